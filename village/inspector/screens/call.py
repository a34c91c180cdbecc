"""One model call: the prompt (every message), the response, tokens, latency, cache hit,
retries, why an answer was invalid, the fallback, the error and what was dropped to fit."""
from __future__ import annotations

import json

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Static

from village.inspector.screens.base import Popup
from village.inspector.widgets.base import or_say


class CallScreen(Popup):
    DEFAULT_CSS = """
    CallScreen .call-head { margin-bottom: 1; }
    CallScreen .role { text-style: bold; color: $accent; margin-top: 1; }
    """
    BINDINGS = [Binding("s", "toggle_schema", "Schema")]

    def __init__(self, call_id: int):
        super().__init__()
        self.call_id = call_id
        self.call: dict | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="call-body", classes="popup"):
            yield Static(id="call-text")
        yield Footer()

    def on_mount(self) -> None:
        self.call = self.app.reader.llm_call(self.call_id)  # type: ignore[attr-defined]
        self.render_call(schema=False)
        self.query_one("#call-body").focus()

    def render_call(self, schema: bool) -> None:
        c = or_say(self, self.call, "#call-text", f"Model call {self.call_id} is not in this run.")
        if c is None:
            return
        r = self.app.reader  # type: ignore[attr-defined]
        flags = []
        if c.get("cached"):
            flags.append("[green]cached[/green]")
        if c.get("retries"):
            flags.append(f"[yellow]{c['retries']} retries[/yellow]")
        if c.get("fallback"):
            flags.append("[red]fallback used[/red]")
        out = [f"[b]Call {c['id']}[/b] · {escape(c['purpose'] or '?')} · {escape(c.get('agent') or 'no agent')}"
               f" · step {c['step']} ({r.clock(c['step'])}) · model {escape(c.get('model') or '?')}",
               f"tokens {c.get('prompt_tokens') or 0} in / {c.get('completion_tokens') or 0} out · "
               f"{c.get('latency_ms') or 0:.0f} ms · finish {escape(str(c.get('finish_reason')))}"
               + (" · " + ", ".join(flags) if flags else " · not cached, no retries, no fallback")]
        if c.get("invalid"):
            out.append(f"[yellow]invalid answer:[/yellow] {escape(str(c['invalid']))}")
        if c.get("error"):
            out.append(f"[red]error:[/red] {escape(str(c['error']))}")
        if c.get("dropped"):
            out.append(f"[yellow]dropped to fit the context:[/yellow] {escape(json.dumps(c['dropped']))}")
        out.append("")
        out.append("[b u]Prompt[/b u]")
        messages = c.get("messages") or []
        if isinstance(messages, str):
            messages = [{"role": "?", "content": messages}]
        for msg in messages:
            out.append(f"[b $accent]{escape(str(msg.get('role', '?')))}[/]")
            out.append(escape(str(msg.get("content", ""))))
        out.append("")
        out.append("[b u]Response[/b u]")
        out.append(escape(str(c.get("response") or "(none)")))
        if schema and c.get("schema") is not None:
            out.append("")
            out.append("[b u]Schema[/b u]")
            out.append(escape(json.dumps(c["schema"], indent=2)))
        elif c.get("schema") is not None:
            out.append("\n[dim]s shows the JSON schema the answer had to follow[/dim]")
        self.query_one("#call-text", Static).update("\n".join(out))
        self._schema = schema

    def action_toggle_schema(self) -> None:
        self.render_call(schema=not getattr(self, "_schema", False))
