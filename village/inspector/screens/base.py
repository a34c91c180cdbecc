"""What the pop-ups share: a bordered panel over the main screen that Esc or q closes."""
from __future__ import annotations

from textual.binding import Binding
from textual.screen import ModalScreen


class Popup(ModalScreen[None]):
    """A pop-up: its panel (the child with class ``popup``) is bordered over the main screen;
    Esc or q closes it."""

    DEFAULT_CSS = """
    Popup { align: center middle; }
    Popup > .popup { width: 96%; height: 1fr; margin: 1 0 0 0; border: round $accent; background: $panel;
                     padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close")]


class RecordPopup(Popup):
    """A pop-up about one recorded thing: :meth:`load` runs after the first layout (so its
    tables fit their width); ``action_open_call`` opens the model call behind the thing
    (``call_id``), for a subclass to bind to c. Its memory tables
    (:class:`~village.inspector.widgets.base.MemoryTable`) open a record on Enter."""

    call_id: int | None = None

    def on_mount(self) -> None:
        self.call_after_refresh(self.load)

    def load(self) -> None:  # pragma: no cover - every pop-up overrides it
        raise NotImplementedError

    def action_open_call(self) -> None:
        if self.call_id:
            self.app.open_call(int(self.call_id))  # type: ignore[attr-defined]
