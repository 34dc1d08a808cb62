"""What each slash command does in the app; the command table itself is in commands.py.

Commands that wait on the network run as workers that report failures in the chat instead of
ending the app. Every answer says what happened, and what to type to undo or go on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from node.crypto.keys import fingerprint
from node.errors import (
    ConnectionLost,
    ErrorCode,
    InvalidInput,
    P2PError,
    RemoteError,
    SeedUnavailable,
)
from node.storage.files import secure_dir
from node.user.events import MessageQueued, MessageReceived
from node.user.node import UserNode
from node.wire.names import fold_name, looks_alike, require_name

from . import acts_ui
from .commands import Command, help_text
from .group_view import gid_of, group_key, members_text
from .host import Host
from .logbook import PAGE, Logbook, Message, export, file_stem, key_of
from .seed_url import check_seed_url
from .widgets.contacts_pane import ago

log = logging.getLogger("p2p.tui")

LOOKUP_TIMEOUT = 3.0


class Slash:
    """Runs parsed commands against the app and its node."""

    def __init__(self, app: Host) -> None:
        self.app = app
        self.compared: dict[str, str] = {}  # folded name -> fingerprint shown by /verify NAME
        self.logbook = Logbook(lambda: app.data_dir / "logs", lambda: app.settings.logs)
        self.log_failed = False  # said once, not for every message

    # ------------------------------------------------------------------ helpers

    def say(self, text: str) -> None:
        self.app.chat.system(text)

    def error(self, text: str) -> None:
        self.app.chat.system(text, classes="error")

    def node(self) -> UserNode | None:
        if self.app.node is None:
            self.error("still starting; try again in a moment")
        return self.app.node

    def background(self, work: Coroutine[Any, Any, object], name: str) -> None:
        """Run `work` in a worker; an unexpected failure is shown, never the end of the app."""

        async def guarded() -> None:
            try:
                await work
            except P2PError as exc:
                self.error(str(exc))

        self.app.run_worker(guarded(), name=name, group="actions", exit_on_error=False)

    def connected(self) -> bool:
        return self.app.state == "connected" and not self.app.replaced

    # ------------------------------------------------------------------ dispatch

    def run(self, cmd: Command) -> None:
        handler = getattr(self, f"do_{cmd.name}")
        try:
            handler(*cmd.args)
        except InvalidInput as exc:
            self.error(str(exc))

    def send(self, to: str, text: str) -> None:
        node = self.node()
        if node is None:
            return
        if (gid := gid_of(to)) is not None:
            self.background(node.groups.send(gid, text), "send")
            return
        self.background(node.send(to, text), "send")  # its line comes from the queued event

    # ------------------------------------------------------------------ groups (group_ui.py)

    def group(self) -> tuple[UserNode, str] | None:
        """The node and the open group, or None (said) when no group is open."""
        node = self.node()
        gid = gid_of(self.app.current)
        if node is None:
            return None
        if gid is None:
            self.error("no group is open: pick one marked # in Contacts")
            return None
        return node, gid

    def do_group(self, topic: str, *names: str) -> None:
        node = self.node()
        if node is None:
            return

        async def make() -> None:
            state = await node.groups.new(topic, list(names))
            self.app.open_conversation(group_key(state.gid))
            self.say(members_text(state))

        self.background(make(), "group new")

    def do_invite(self, name: str) -> None:
        if (open_ := self.group()) is not None:
            node, gid = open_
            self.background(node.groups.add(gid, name), "invite")

    def do_kick(self, name: str) -> None:
        if (open_ := self.group()) is not None:
            open_[0].groups.remove(open_[1], name)

    def do_topic(self, text: str) -> None:
        if (open_ := self.group()) is not None:
            open_[0].groups.set_topic(open_[1], text)

    def do_members(self) -> None:
        if (open_ := self.group()) is not None:
            self.say(members_text(open_[0].groups.state(open_[1])))

    def do_leave(self) -> None:
        if (open_ := self.group()) is not None:
            open_[0].groups.leave(open_[1])
            self.say("you left the group; its history stays")

    # ------------------------------------------------------------------ conversations

    def do_msg(self, name: str, text: str) -> None:
        require_name(name)
        node = self.node()
        if node is None:
            return
        new = node.contact(name) is None
        self.app.open_conversation(name)
        self.send(name, text)
        if new:
            self.background(self.check_new_name(name), "check name")

    async def check_new_name(self, name: str) -> None:
        """A name first written to by /msg that nobody holds yet: said plainly (a typo?); the
        message waits for the name to appear, and /cancel gives it up."""
        node = self.app.node
        if node is None or not self.connected():
            return
        try:
            await asyncio.wait_for(node.lookup(name), LOOKUP_TIMEOUT)
        except RemoteError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                self.error(
                    f"nobody is registered as {name} yet: the message waits and goes out if "
                    f"{name} registers (check the spelling; /cancel gives it up, /remove {name} "
                    "drops the contact)"
                )
        except (SeedUnavailable, ConnectionLost, TimeoutError):
            pass

    def do_retry(self, msg_id: str | None = None) -> None:
        node = self.node()
        if node is None:
            return
        # the last failed message here first: a newer one still waiting is being tried anyway
        msg = node.retry(msg_id, None if msg_id else self.app.current, failed_first=True)
        self.say(f"trying your message to {msg.recipient} again now (/cancel gives it up)")

    def do_cancel(self, msg_id: str | None = None) -> None:
        node = self.node()
        if node is None:
            return
        msg = node.cancel(msg_id, None if msg_id else self.app.current)
        self.say(
            f"gave up on your message to {msg.recipient}: marked failed (cancelled); /retry "
            "sends it again"
        )

    # r3: replies, reactions, edits, deletes (acts_ui.py)

    def do_reply(self, text: str) -> None:
        acts_ui.run(self, "reply", text)

    def do_react(self, *args: str) -> None:
        acts_ui.run(self, "react", " ".join(args))

    def do_edit(self, text: str) -> None:
        acts_ui.run(self, "edit", text)

    def do_delete(self, msg_id: str = "") -> None:
        acts_ui.run(self, "delete", msg_id)

    def do_jump(self, msg_id: str | None = None) -> None:
        acts_ui.jump(self, msg_id)

    def do_open(self, name: str) -> None:
        require_name(name)
        self.app.open_conversation(name)

    def do_me(self, text: str) -> None:
        if self.app.current is not None:
            self.send(self.app.current, "/me " + text)

    def do_close(self) -> None:
        self.app.current = None
        self.app.chat.close()

    def do_window(self, number: str) -> None:
        if not number.isdecimal():
            raise InvalidInput("usage: /window N, N as numbered in Contacts")
        self.app.action_window(int(number))

    def do_buffer(self, name: str) -> None:
        """weechat's /buffer: a contact or group by its name, or the first that starts so."""
        names = self.app.contacts.names()
        topics = {n: e.topic for n in names if (e := self.app.contacts.get(n)) and e.topic}
        wanted = fold_name(name) if not name.startswith("#") else name.lower()
        exact = [n for n in names if fold_name(n) == wanted]
        starts = sorted(
            (n for n in names if fold_name(n).startswith(wanted)), key=lambda n: fold_name(n)
        )
        by_topic = sorted(n for n, t in topics.items() if t.lower().startswith(name.lower()))
        found = (exact or starts or by_topic)[:1]
        if not found:
            self.error(f"no conversation {name} (/msg {name} starts one)")
            return
        self.app.open_conversation(found[0])

    def do_clear(self) -> None:
        """Clear the view; the history stays on disk (opening the conversation shows it)."""
        chat = self.app.chat
        if self.app.current is None:
            chat.close()
            return
        chat.clear_view()
        self.say(f"view cleared; the history is kept (/open {self.app.current} shows it again)")

    def do_read(self, what: str | None = None) -> None:
        node = self.node()
        if node is None:
            return
        if what not in (None, "all"):
            raise InvalidInput("usage: /read, or /read all")
        contacts = self.app.contacts
        names = (
            [e.name for e in contacts.entries.values() if e.unread]
            if what == "all"
            else [self.app.current]
            if self.app.current is not None
            else []
        )
        for name in names:
            newest = node.history(name, None, 1) if gid_of(name) is None else []
            if newest:
                node.mark_read(name, newest[-1].n)
            entry = contacts.get(name)
            if entry is not None:
                entry.unread = 0
                contacts.changed(entry.name)
        self.say(f"marked {len(names)} conversation{'s' if len(names) != 1 else ''} read")

    def do_search(self, query: str = "") -> None:
        self.search(query)

    def search(self, query: str) -> None:
        self.app.open_search(query)

    # ------------------------------------------------------------------ contacts

    def do_add(self, name: str) -> None:
        require_name(name)
        node = self.node()
        if node is None:
            return
        if node.is_blocked(name):
            self.error(f"{name} is blocked: /unblock {name} first")
            return
        if not node.add_contact(name):
            self.say(f"{name} is already a contact")
            return
        alike = [c.name for c in node.contacts() if looks_alike(c.name, name)]
        if alike:
            self.error(
                f"warning: {name} looks like your contact {', '.join(alike)}; they may not be "
                f"who you think: compare fingerprints (/verify) before you trust either"
            )
        self.background(self.check_added(name), "check added")

    async def check_added(self, name: str) -> None:
        node = self.app.node
        if node is None:
            return
        if not self.connected():
            self.say(f"added {name} (not checked: no seed reachable now)")
            return
        try:
            found = await asyncio.wait_for(node.lookup(name), LOOKUP_TIMEOUT)
        except RemoteError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                self.error(
                    f"nobody is registered as {name} yet; added anyway (you will see them come "
                    f"online if they register), /remove {name} to undo"
                )
            else:
                self.say(f"added {name} (the seed could not check the name: {exc.message})")
            return
        except (SeedUnavailable, ConnectionLost, TimeoutError):
            self.say(f"added {name} (not checked: no seed answered)")
            return
        state = "online" if found.online else "offline"
        self.say(f"added {found.record.name} ({state}, key {fingerprint(found.record.key)})")

    def do_remove(self, name: str) -> None:
        node = self.node()
        if node is None:
            return
        if node.remove_contact(name):
            self.say(f"removed {name} from contacts; the history stays (/add {name} to undo)")
        else:
            self.error(f"{name} is not a contact")

    def do_block(self, name: str | None = None) -> None:
        node = self.node()
        if node is None:
            return
        if name is None:
            blocked = node.blocked()
            self.say(
                "blocked: " + ", ".join(blocked) if blocked else "nobody is blocked (/block NAME)"
            )
            return
        if node.block(name):
            self.mark_blocked(name, True)
            kept = (
                "they stay in your contacts, marked blocked"
                if node.contact(name) is not None
                else "they do not become a contact by writing"
            )
            self.say(
                f"blocked {name}: their messages are refused before they are stored, never "
                f"shown nor alerted (they are told you do not accept them); {kept}. "
                f"/unblock {name} undoes it."
            )
        else:
            self.say(f"{name} was blocked already")

    def do_unblock(self, name: str) -> None:
        node = self.node()
        if node is None:
            return
        if node.unblock(name):
            self.mark_blocked(name, False)
            follow = "" if node.contact(name) is not None else f" (/add {name} to follow them)"
            self.say(f"unblocked {name}: their messages arrive again{follow}")
        else:
            self.error(f"{name} is not blocked")

    def mark_blocked(self, name: str, blocked: bool) -> None:
        entry = self.app.contacts.get(name)
        if entry is not None:
            entry.blocked = blocked
            self.app.contacts.changed(entry.name)

    # ------------------------------------------------------------------ identity

    def local_facts(self, name: str) -> list[str]:
        """What this app knows about `name` without asking anyone."""
        node = self.app.node
        facts: list[str] = []
        contact = node.contact(name) if node else None
        entry = self.app.contacts.get(name)
        if node is not None and node.is_blocked(name):
            facts.append("blocked")
        if contact is None:
            facts.append("not a contact")
        else:
            if contact.key:
                mark = "verified ✔" if contact.verified else "not verified (/verify)"
                facts.append(f"pinned key {fingerprint(contact.key)}, {mark}")
            else:
                facts.append("no key pinned yet (pinned at the first message or lookup)")
            if contact.changed_key:
                facts.append(
                    f"KEY CHANGED to {fingerprint(contact.changed_key)}: held until /accept"
                )
        if entry is not None:
            facts.append(
                "online"
                if entry.online
                else ago(entry.last_seen, self.app.contacts.clock()).replace("seen", "last seen")
            )
        return facts

    def do_whois(self, name: str) -> None:
        require_name(name)
        if self.node() is None:
            return
        if not self.connected():  # answer at once with what is known here
            facts = "\n  ".join(["no seed reachable now; known here:", *self.local_facts(name)])
            self.say(f"{name}: {facts}")
            return
        self.background(self.whois(name), "whois")

    async def whois(self, name: str) -> None:
        node = self.app.node
        if node is None:
            return
        local = self.local_facts(name)
        try:
            found = await asyncio.wait_for(node.lookup(name), LOOKUP_TIMEOUT)
        except RemoteError as exc:
            why = (
                f"nobody is registered as {name}"
                if exc.code == ErrorCode.NOT_FOUND
                else exc.message
            )
            self.say(f"{name}: {why}\n  " + "\n  ".join(local))
            return
        except (SeedUnavailable, ConnectionLost, TimeoutError):
            facts = "\n  ".join(["no seed answered; known here:", *local])
            self.say(f"{name}: {facts}")
            return
        r = found.record
        contact = node.contact(r.name)
        if contact is None or contact.key is None:
            pinned = "not pinned yet"
        elif contact.key != r.key:
            pinned = "DIFFERS from the pinned key"
        else:
            pinned = "the pinned key, " + (
                "verified ✔" if contact.verified else f"not verified (/verify {r.name})"
            )
        state = f"online at {found.seed}" if found.online else "offline"
        extra = [f for f in local if f.startswith(("blocked", "KEY CHANGED"))]
        lines = [f"key {fingerprint(r.key)} ({pinned})", f"endpoint {r.endpoint}  seq {r.seq}"]
        self.say(f"{r.name}: {state}\n  " + "\n  ".join([*lines, *extra]))

    def do_verify(self, name: str, answer: str | None = None) -> None:
        require_name(name)
        if answer not in (None, "yes"):
            raise InvalidInput(f"usage: /verify {name}, then /verify {name} yes once they match")
        if self.node() is not None:
            self.background(self.verify(name, answer == "yes"), "verify")

    async def verify(self, name: str, confirm: bool) -> None:
        """Show both fingerprints; mark verified only on `/verify NAME yes` after they were shown
        here, and only if the key is still the one shown (a yes never marks an unseen key)."""
        node = self.app.node
        if node is None:
            return
        shown = self.compared.get(fold_name(name)) if confirm else None
        try:
            theirs = await node.verify(name, confirmed=shown)
        except RemoteError as exc:
            self.error(f"cannot verify {name}: {exc.message}")
            return
        except (SeedUnavailable, ConnectionLost, TimeoutError):
            self.error(
                f"cannot verify {name} now: no key is pinned for them yet and no seed answers"
            )
            return
        mine = node.my_fingerprint()
        you = f"you ({self.app.me})"
        width = max(len(you), len(name))
        both = f"  {you.ljust(width)}  {mine}\n  {name.ljust(width)}  {theirs}"
        if shown is not None and shown == theirs:
            self.compared.pop(fold_name(name), None)
            entry = self.app.contacts.entry(name)
            entry.verified = True
            self.app.contacts.changed(name)
            self.say(
                f"{name} is now marked verified ✔ for the key you compared:\n{both}\n"
                f"/unverify {name} takes the mark off; a changed key clears it."
            )
            return
        self.compared[fold_name(name)] = theirs
        first = "Nothing is marked yet. " if confirm else ""
        self.say(
            f"{first}Compare these with {name} out of band (in person, on a call):\n{both}\n"
            f"If what {name} reads out matches, type /verify {name} yes to mark {name} "
            f"verified; if it differs, do not trust this key."
        )

    def do_unverify(self, name: str) -> None:
        node = self.node()
        if node is None:
            return
        if node.unverify(name):
            entry = self.app.contacts.entry(name)
            entry.verified = False
            self.app.contacts.changed(name)
            self.say(f"{name} is no longer marked verified")
        else:
            self.error(f"{name} is not marked verified")

    def do_accept(self, name: str) -> None:
        node = self.node()
        if node is None:
            return
        key = node.accept_key(name)
        if key is None:
            self.error(f"{name} has no changed key to accept")
            return
        entry = self.app.contacts.entry(name)
        entry.held = False
        self.app.contacts.changed(name)
        self.say(
            f"accepted {name}'s new key {fingerprint(key)}; your held messages to {name} go out "
            f"now (/verify {name} to compare it with them)"
        )

    def do_fingerprint(self) -> None:
        node = self.node()
        if node is None:
            return
        mine = node.my_fingerprint()
        self.say(f"your key fingerprint ({self.app.me}): {mine}")
        self.app.notify(mine, title="Your key fingerprint", markup=False)

    # ------------------------------------------------------------------ seeds and the name

    def do_seed(self, first: str = "", url: str | None = None) -> None:
        node = self.node()
        if node is None:
            return
        if url is not None:
            if first != "remove":
                raise InvalidInput("usage: /seed URL, or /seed remove URL")
            self.remove_seed(node, url)
            return
        url = check_seed_url(first)
        node.add_seed(url)
        settings = self.app.settings
        if url not in settings.seeds:
            settings.seeds.append(url)
            self.app.save_settings()
        self.say(f"added seed {url}")

    def remove_seed(self, node: UserNode, url: str) -> None:
        """Forget a seed added by mistake: not dialled again, not saved (mesh-listed ones stay
        known, since the mesh lists them)."""
        url = url.strip().rstrip("/")
        settings = self.app.settings
        saved = url in settings.seeds
        if saved:
            settings.seeds.remove(url)
            self.app.save_settings()
        if not node.remove_seed(url) and not saved:
            self.error(f"{url} is not a seed you added (/seeds lists them)")
            return
        self.say(f"removed seed {url}; /seed {url} adds it back")

    def do_seeds(self) -> None:
        seeds = self.app.seeds.seeds
        if not seeds:
            self.say("no seed known yet")
            return
        lines = []
        for s in seeds:
            up = "up" if s.up else ("down" if s.up is False else "not tried")
            marks = "".join([" home" if s.home else "", " embedded" if s.embedded else ""])
            rtt = f" {s.rtt_ms:.1f} ms" if s.rtt_ms else ""
            lines.append(f"  {s.name or '?'} {s.url} {up}{rtt}{marks}")
        self.say("seeds:\n" + "\n".join(lines))

    def do_reconnect(self) -> None:
        node = self.node()
        if node is None:
            return
        reconnect = getattr(node, "reconnect", None)
        if reconnect is None:
            self.error("this version cannot take the name back while running: restart p2p-tui")
            return
        if self.app.replaced:
            self.say(f"taking the name {self.app.me} back here; the other session will be told")
        else:
            self.say("reconnecting: dialling the configured seeds first")
        self.app.replaced = False
        self.app.state = "connecting"
        self.app.show_state()

        async def go() -> None:
            result = reconnect()
            if inspect.isawaitable(result):
                await result

        self.background(go(), "reconnect")

    # ------------------------------------------------------------------ settings

    def do_notify(self, what: str | None = None, value: str | None = None) -> None:
        settings = self.app.settings
        if what is None:
            self.say(
                f"alerts for messages you do not see (another conversation, or this one while the "
                f"terminal is not focused; in a group, when it names you): bell "
                f"{'on' if settings.bell else 'off'}, desktop {settings.desktop}, text "
                f"{'hidden (private)' if settings.private else 'shown'} "
                "(/notify bell on|off, /notify desktop off|osc9|osc777, /notify private on|off)"
            )
            return
        if what == "bell" and value in ("on", "off"):
            settings.bell = value == "on"
        elif what == "desktop" and value in ("off", "osc9", "osc777"):
            settings.desktop = value  # type: ignore[assignment]
        elif what == "private" and value in (None, "on", "off"):
            settings.private = value != "off"
        else:
            raise InvalidInput(
                "usage: /notify bell on|off, /notify desktop off|osc9|osc777, "
                "or /notify private on|off"
            )
        self.app.save_settings()
        self.do_notify()

    # ------------------------------------------------------------------ logs (logbook.py)

    def conversation(self, name: str) -> tuple[str, str]:
        """(the conversation's key, its name as shown) for NAME: a contact, anyone, or a group
        by '#' and its id or its topic."""
        node = self.app.node
        if not name.startswith("#"):
            require_name(name)
            entry = self.app.contacts.get(name)
            return key_of(name), entry.name if entry is not None else name
        if node is not None:
            groups = node.groups.groups()
            ids = [s.gid for s in groups if s.gid == name[1:]]
            ids = ids or [s.gid for s in groups if fold_name(s.topic) == fold_name(name[1:])]
            if len(ids) == 1:
                return group_key(ids[0]), name
        raise InvalidInput(f"no group {name} (a group is '#' and its id, or its topic)")

    def do_export(self, name: str, file: str | None = None) -> None:
        node = self.node()
        if node is None:
            return
        key, shown = self.conversation(name)
        if file is not None:
            path = Path(file).expanduser()
        else:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            path = self.app.data_dir / "logs" / f"{file_stem(key)}-{stamp}.txt"
            secure_dir(path.parent)
        if (gid := gid_of(key)) is not None:
            groups = node.groups

            def pages(after: int) -> list[Message]:
                return list(groups.history_after(gid, after, PAGE))

        else:

            def pages(after: int) -> list[Message]:
                return list(node.history_after(key, after, PAGE))

        async def run() -> None:
            try:
                count = await export(pages, path)
            except OSError as exc:
                self.error(f"cannot export to {path}: {exc.strerror or exc}")
                return
            what = "1 message" if count == 1 else f"{count} messages"
            self.say(f"exported {what} with {shown} to {path}")

        self.background(run(), "export")

    def do_log(self, value: str | None = None) -> None:
        settings = self.app.settings
        current = self.app.current
        if value is None:
            kept = ", ".join(settings.logs) or "none"
            self.say(
                f"conversations logged to {self.app.data_dir / 'logs'}: {kept} "
                "(/log on|off for the open one)"
            )
            return
        if value not in ("on", "off"):
            raise InvalidInput("usage: /log on|off (for the open conversation), /log lists them")
        if current is None:
            self.error("open a conversation to log it (/log on|off)")
            return
        key = key_of(current)
        logs = [k for k in settings.logs if k != key]
        if value == "on":
            logs.append(key)
        settings.logs = logs
        self.app.save_settings()
        if value == "on":
            self.log_failed = False
            self.say(
                f"logging {current}: each new message is added to "
                f"{self.logbook.path(key)} (/export {current} writes what came before)"
            )
        else:
            self.say(f"no longer logging {current}; the log file stays")

    def log_message(self, event: MessageReceived | MessageQueued) -> None:
        """A message stored or sent: added to its conversation's log if that is kept."""
        if event.group is not None:
            key = group_key(event.group)
        else:
            key = event.to if isinstance(event, MessageQueued) else event.from_
        try:
            self.logbook.append(key, event.ts, event.from_, event.text)
        except (OSError, P2PError) as exc:
            if not self.log_failed:
                self.log_failed = True
                self.error(f"cannot write the log of {key}: {exc}")

    def do_timestamps(self) -> None:
        settings = self.app.settings
        settings.full_times = not settings.full_times
        self.app.chat.set_full_times(settings.full_times)
        self.app.save_settings()
        self.say("full timestamps " + ("on" if settings.full_times else "off") + " (ctrl+t)")

    def do_help(self) -> None:
        self.say(help_text())

    def do_quit(self) -> None:
        self.app.exit()
