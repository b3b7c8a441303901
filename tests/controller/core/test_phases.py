"""controller.core.phases: the transition table, row by row, and every illegal move."""

from __future__ import annotations

import pytest

from controller.core.phases import TERMINAL, TRANSITIONS, Event, Phase, move
from controller.errors import IllegalMove

ROWS = sorted(TRANSITIONS.items(), key=lambda kv: (kv[0][0].value, kv[0][1].value))
ILLEGAL = [(p, e) for p in Phase for e in Event if (p, e) not in TRANSITIONS]


class TestPhases:
    @pytest.mark.parametrize(("key", "target"), ROWS, ids=str)
    def test_row(self, key: tuple[Phase, Event], target: Phase) -> None:
        """Each row of the table is what move() returns."""
        assert move(*key) is target

    @pytest.mark.parametrize(("phase", "event"), ILLEGAL, ids=str)
    def test_illegal(self, phase: Phase, event: Event) -> None:
        """A move the table lacks raises IllegalMove naming phase and event."""
        with pytest.raises(IllegalMove) as info:
            move(phase, event)
        assert phase.value in str(info.value)
        assert event.value in str(info.value)

    def test_terminal_phases_have_no_exits(self) -> None:
        """Promoted, rolled back and aborted are final."""
        assert not [k for k in TRANSITIONS if k[0] in TERMINAL]

    def test_unknown_names(self) -> None:
        """Strings that are no phase or event are illegal moves, not ValueErrors."""
        with pytest.raises(IllegalMove, match="'warp'"):
            move("progressing", "warp")
