"""What every inspector panel shares: it shows the app's selected step and agent."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Sequence, TypeVar

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.dom import DOMNode
from textual.widget import Widget
from textual.widgets import DataTable, Static

from village.inspector.fmt import clip

if TYPE_CHECKING:
    from village.inspector.app import InspectorApp
    from village.replay import Agent

T = TypeVar("T")


class View:
    """Mixin for a panel that depends on the selected step or agent.

    The app marks every view stale when the step or agent changes and calls :meth:`reload`
    at once on the views on screen; the others reload when their tab is opened.
    """

    stale: bool = True

    @property
    def inspector(self) -> "InspectorApp":
        return self.app  # type: ignore[attr-defined, return-value]

    def reload(self) -> None:  # pragma: no cover - every view overrides it
        raise NotImplementedError

    def on_resize(self, event: events.Resize) -> None:
        """Tables fit their width: reload when it changes (and the view is on screen)."""
        if event.size.width != getattr(self, "_fitted_width", None):
            self._fitted_width = event.size.width
            self.stale = True
            self.inspector.call_after_refresh(self.inspector.reload_shown)

    def shown(self) -> bool:
        """Whether the view is on the active tab(s)."""
        node: Any = self
        while isinstance(node, Widget):
            if not node.display:
                return False
            node = node.parent
        return True


class AgentView(View):
    """A view of the selected agent: :meth:`reload` calls :meth:`show` with the agent, or
    with none selected shows ``NO_AGENT`` in the Static ``NOTE`` (a selector)."""

    NOTE: ClassVar[str]
    NO_AGENT: ClassVar[str]

    def reload(self) -> None:
        agent = or_say(self, self.inspector.agent, self.NOTE, self.NO_AGENT)  # type: ignore[arg-type]
        if agent is not None:
            self.show(agent)

    def show(self, agent: "Agent") -> None:  # pragma: no cover - every agent view overrides it
        raise NotImplementedError


def or_say(node: DOMNode, value: T | None, where: str, message: str) -> T | None:
    """``value``; when it is None (no agent selected, a record not in the run), ``message``
    is shown in the Static ``where`` (a selector below ``node``) first."""
    if value is None:
        node.query_one(where, Static).update(message)
    return value


def fill_table(table: DataTable, rows: Iterable[tuple[str, Sequence[Any]]], keep: int | None = None) -> None:
    """Clear ``table`` and add ``(key, cells)`` rows, cutting the last cell of each row with …
    so the table fits its width (no sideways scrolling; Enter opens the full text). Cells are
    shown as plain text (never parsed as markup)."""
    rows = list(rows)
    table.clear()
    pad = 2 * table.cell_padding
    ncols = len(table.columns)
    widths = [c.label.cell_len for c in table.columns.values()]
    for _, cells in rows:
        for i, c in enumerate(cells[:-1]):
            w = c.cell_len if isinstance(c, Text) else cell_len(str(c))
            if w > widths[i]:
                widths[i] = w
    avail = 200
    if table.size.width:
        scrollbar = 1 if len(rows) + 1 > table.size.height else 0
        avail = table.size.width - sum(w + pad for w in widths[: ncols - 1]) - pad - scrollbar - 1
        avail = max(16, avail)
    for key, cells in rows:
        last = cells[-1]
        if isinstance(last, Text):
            last = last.copy()
            last.truncate(avail, overflow="ellipsis")
        else:
            last = clip(last, avail)
        # Text, never str: DataTable reads a str as markup, and recorded text may hold "[...]"
        table.add_row(*(c if isinstance(c, Text) else Text(str(c)) for c in (*cells[:-1], last)),
                      key=key)
    if rows and keep is not None:
        table.move_cursor(row=max(0, min(keep, len(rows) - 1)), animate=False)


def box_bindings(what: str) -> list[Binding]:
    """Keys of a view with a text box (see :class:`BoxKeys`): / focuses it (footer: ``what``),
    Esc leaves it."""
    return [Binding("slash", "edit", what), Binding("escape", "leave", "Leave box", show=False)]


class BoxKeys:
    """Mixin for a view with a text box: ``action_edit`` focuses ``BOX``, ``action_leave``
    focuses ``LEAVE_TO`` (both selectors); bind them with :func:`box_bindings`."""

    BOX: ClassVar[str]
    LEAVE_TO: ClassVar[str]

    def action_edit(self) -> None:
        self.query_one(self.BOX).focus()  # type: ignore[attr-defined]

    def action_leave(self) -> None:
        self.query_one(self.LEAVE_TO).focus()  # type: ignore[attr-defined]


class MemoryTable(DataTable):
    """A table of memory records, each row keyed by the record's id: Enter opens the record.

    ``columns`` are labels or ``(label, key)`` pairs; the cursor is a row.
    """

    def __init__(self, *columns: str | tuple[str, str], id: str, zebra_stripes: bool = True) -> None:  # noqa: A002
        super().__init__(cursor_type="row", zebra_stripes=zebra_stripes, id=id)
        for c in columns:
            label, key = (c, None) if isinstance(c, str) else c
            self.add_column(label, key=key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.open_memory(int(event.row_key.value))  # type: ignore[attr-defined]
