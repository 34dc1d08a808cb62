"""The user node: outbox, delivery, inbox, contacts, the seed client, the store, events, and the facade."""
