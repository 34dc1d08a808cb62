"""Keys and what they prove: Ed25519 identities, signatures over canonical JSON, NaCl boxes."""
