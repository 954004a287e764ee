"""Synthetic stream events shaped like Zooniverse's, deterministic from a seed: the benchmark's
data (``bench/generate.py``) and the ``eras demo`` sample.

Each event is built from a real event (``kinesis-*-event.json`` beside this module) so a
classification is about 3 KB like the ones Panoptes publishes. The shape follows Zooniverse:

- volunteers' activity follows a power law (Zipf, exponent 1): with 2 million events the
  busiest volunteer has well over 100,000 classifications spread over all six years, while
  the median volunteer has a handful; about 8% of classifications are anonymous;
- a few thousand projects, also Zipf-popular, with about three times as many workflows; the
  most popular project has 48 workflows; a volunteer mostly classifies on a home project and
  otherwise on up to 40 favourites;
- volunteers classify in sittings of several subjects in one workflow; about 5% of
  classifications are made for a user group, and the popular groups have hundreds of members;
- Talk comments arrive at about a tenth of the classification rate.

Event ``i`` of a run depends only on the seed, ``events``, ``start`` and ``span``, so the same
arguments always give the same bytes. Events are in time order, by default across 2020 to 2025.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final

import orjson

# Real events, published by Panoptes and Talk, that every generated event is shaped after.
TEMPLATES: Final = resources.files("eras.services.sample")
START: Final = datetime(2020, 1, 1, tzinfo=UTC)
SPAN: Final = timedelta(days=6 * 365)
COMMENT_SHARE: Final = 1 / 11  # one comment for every ten classifications
# Shares of sittings, chosen so that about 8% of classifications are anonymous and 5% are
# made for a group (anonymous volunteers make no comments and belong to no group).
ANONYMOUS_SHARE: Final = 0.073
GROUP_SHARE: Final = 0.054
MEAN_SITTING: Final = 8  # classifications in one sitting, on average
FAVOURITES: Final = 40  # projects a volunteer returns to, besides the home one
LARGEST_PROJECT_WORKFLOWS: Final = 48
_PRIME: Final = 2_147_483_647  # ids are ranks scrambled by multiplication modulo this prime


@dataclass(frozen=True)
class Shape:
    """How many volunteers, projects and groups a run of ``events`` events has."""

    volunteers: int
    projects: int
    groups: int

    @classmethod
    def for_events(cls, events: int) -> Shape:
        return cls(
            volunteers=max(100, events // 20),
            projects=max(20, min(4_000, events // 500)),
            groups=max(10, min(20_000, events // 1_000)),
        )


def user_id(rank: int) -> int:
    """The volunteer at popularity ``rank`` (1 is the busiest); distinct ranks, distinct ids."""
    return 1_000 + rank * 48_271 % _PRIME % 9_000_000


def project_id(rank: int) -> int:
    return 1_000 + rank * 7


def group_id(rank: int) -> int:
    return 2_000_000 + rank * 13


def workflow_count(project_rank: int) -> int:
    """48 for the most popular project; 1 to 5 for the others, three on average."""
    if project_rank == 1:
        return LARGEST_PROJECT_WORKFLOWS
    return 1 + project_rank * 2_654_435_761 % 5


def first_workflow_id(project_rank: int) -> int:
    # Each project owns a disjoint range of 64 workflow ids.
    return 10_000 + project_rank * 64


def _zipf_rank(rng: random.Random, size: int) -> int:
    """A rank from 1 to ``size`` with probability proportional to 1/rank."""
    return min(size, int(math.exp(rng.random() * math.log(size + 1))))


# --- byte templates ------------------------------------------------------------------------

_PLACEHOLDER: Final = re.compile(rb'"@(\w+)@"')


class Template:
    """A fixture event serialised once, with its variable values cut out.

    Values are spliced in as ready JSON bytes, which is several times faster than building
    and serialising a 3 KB document per event.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        pieces = _PLACEHOLDER.split(orjson.dumps(document))
        self._literals = pieces[0::2]
        self._names = [name.decode() for name in pieces[1::2]]

    def render(self, values: dict[str, bytes]) -> bytes:
        out = [self._literals[0]]
        for name, literal in zip(self._names, self._literals[1:], strict=True):
            out.append(values[name])
            out.append(literal)
        out.append(b"\n")
        return b"".join(out)


def _classification_template() -> Template:
    document = orjson.loads((TEMPLATES / "kinesis-classification-event.json").read_bytes())
    data = document["data"]
    document["timestamp"] = "@timestamp@"
    data["id"] = "@id@"
    data["created_at"] = data["updated_at"] = "@created_at@"
    data["href"] = "@href@"
    metadata = data["metadata"]
    metadata["session"] = "@session@"
    metadata["started_at"] = "@started_at@"
    metadata["finished_at"] = "@created_at@"
    metadata["user_group_ids"] = "@user_group_ids@"
    metadata["subject_selection_state"]["already_seen"] = "@already_seen@"
    data["links"] = {
        "project": "@project@",
        "user": "@user@",
        "workflow": "@workflow@",
        "subjects": ["@subject@"],
    }
    linked = document["linked"]
    linked["projects"][0]["id"] = "@project@"
    linked["projects"][0]["href"] = "@project_href@"
    linked["users"] = "@linked_users@"
    linked["workflows"][0]["id"] = "@workflow@"
    linked["workflows"][0]["href"] = "@workflow_href@"
    linked["subjects"][0]["id"] = "@subject@"
    return Template(document)


def _comment_template() -> Template:
    document = orjson.loads((TEMPLATES / "kinesis-comment-event.json").read_bytes())
    data = document["data"]
    document["timestamp"] = "@timestamp@"
    for name in ("id", "discussion_id", "focus_id", "project_id", "user_id", "created_at"):
        data[name] = f"@{name}@"
    data["section"] = "@section@"
    data["url"] = "@url@"
    return Template(document)


def _iso(moment: datetime) -> bytes:
    return (
        b'"'
        + moment.strftime("%Y-%m-%dT%H:%M:%S.").encode()
        + b'%03dZ"' % (moment.microsecond // 1000)
    )


# --- the stream ----------------------------------------------------------------------------


class Generator:
    """Events in time order. ``events`` is the total, comments included."""

    def __init__(
        self, events: int, seed: int, *, start: datetime = START, span: timedelta = SPAN
    ) -> None:
        self.events = events
        self.shape = Shape.for_events(events)
        self._rng = random.Random(seed)
        self._start = start
        self._step = span / max(events, 1)
        self._classification = _classification_template()
        self._comment = _comment_template()

    def lines(self) -> Iterator[bytes]:
        rng = self._rng
        produced = 0
        classification_id = 500_000_000
        comment_id = 9_000_000
        while produced < self.events:
            sitting = min(1 + int(rng.expovariate(1 / MEAN_SITTING)), self.events - produced)
            volunteer = (
                None if rng.random() < ANONYMOUS_SHARE else _zipf_rank(rng, self.shape.volunteers)
            )
            project = self._project_of(volunteer)
            workflow = first_workflow_id(project) + rng.randrange(workflow_count(project))
            groups = self._groups_of(volunteer) if rng.random() < GROUP_SHARE else None
            session = b'"%032x"' % rng.getrandbits(128)
            for _ in range(sitting):
                moment = self._start + self._step * produced
                if volunteer is not None and rng.random() < COMMENT_SHARE:
                    comment_id += 1
                    yield self._comment_line(comment_id, moment, project, volunteer, rng)
                else:
                    classification_id += 1
                    duration = timedelta(milliseconds=rng.randint(3_000, 90_000))
                    yield self._classification_line(
                        classification_id, moment, duration, project, workflow,
                        volunteer, groups, session, rng,
                    )  # fmt: skip
                produced += 1

    def _project_of(self, volunteer: int | None) -> int:
        """A logged-in volunteer mostly returns to a home project, otherwise to one of a few
        dozen favourites; the projects are themselves Zipf-popular."""
        rng = self._rng
        if volunteer is None:
            return _zipf_rank(rng, self.shape.projects)
        favourites = random.Random(volunteer * 31 + 7)
        choice = 0 if rng.random() < 0.7 else 1 + int(rng.expovariate(1 / 8)) % FAVOURITES
        for _ in range(choice):
            _zipf_rank(favourites, self.shape.projects)
        return _zipf_rank(favourites, self.shape.projects)

    def _groups_of(self, volunteer: int | None) -> tuple[int, ...] | None:
        """A volunteer's one or two groups; the same ones every time."""
        if volunteer is None:
            return None
        mine = random.Random(volunteer * 97 + 3)
        first = _zipf_rank(mine, self.shape.groups)
        if mine.random() < 0.8:
            return (first,)
        return (first, _zipf_rank(mine, self.shape.groups))

    def _classification_line(
        self,
        classification_id: int,
        moment: datetime,
        duration: timedelta,
        project: int,
        workflow: int,
        volunteer: int | None,
        groups: tuple[int, ...] | None,
        session: bytes,
        rng: random.Random,
    ) -> bytes:
        created = _iso(moment)
        project_text = b'"%d"' % project_id(project)
        workflow_text = b'"%d"' % workflow
        if volunteer is None:
            user, linked_users = b"null", b"[]"
        else:
            uid = user_id(volunteer)
            user = b'"%d"' % uid
            linked_users = b'[{"id":"%d","login":"volunteer%d","href":"/users/%d"}]' % (
                uid,
                uid,
                uid,
            )
        group_list = (
            b"null"
            if groups is None
            else b"[" + b",".join(b"%d" % group_id(g) for g in groups) + b"]"
        )
        return self._classification.render(
            {
                "timestamp": created[:20] + b'Z"',
                "id": b'"%d"' % classification_id,
                "created_at": created,
                "href": b'"/classifications/%d"' % classification_id,
                "session": session,
                "started_at": _iso(moment - duration),
                "user_group_ids": group_list,
                "already_seen": b"true" if rng.random() < 0.02 else b"false",
                "project": project_text,
                "project_href": b'"/projects/%d"' % project_id(project),
                "user": user,
                "linked_users": linked_users,
                "workflow": workflow_text,
                "workflow_href": b'"/workflows/%d"' % workflow,
                "subject": b'"%d"' % (100_000_000 + rng.randrange(50_000_000)),
            }
        )

    def _comment_line(
        self, comment_id: int, moment: datetime, project: int, volunteer: int, rng: random.Random
    ) -> bytes:
        pid = project_id(project)
        discussion = rng.randrange(1, 400_000)
        return self._comment.render(
            {
                "timestamp": _iso(moment)[:20] + b'Z"',
                "id": b"%d" % comment_id,
                "discussion_id": b"%d" % discussion,
                "focus_id": b"%d" % (100_000_000 + rng.randrange(50_000_000)),
                "project_id": b"%d" % pid,
                "user_id": b'"%d"' % user_id(volunteer),
                "created_at": _iso(moment),
                "section": b'"project-%d"' % pid,
                "url": b'"https://www.zooniverse.org/projects/p/%d/talk/1/%d?comment=%d"'
                % (pid, discussion, comment_id),
            }
        )
