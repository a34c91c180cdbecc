"""What every inspector panel shares: it shows the app's selected step and agent."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.widget import Widget

if TYPE_CHECKING:
    from village.inspector.app import InspectorApp


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

    def shown(self) -> bool:
        """Whether the view is on the active tab(s)."""
        node: Any = self
        while isinstance(node, Widget):
            if not node.display:
                return False
            node = node.parent
        return True
