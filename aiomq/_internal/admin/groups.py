"""The admin Client's consumer-group calls: listing, describing, offsets, resetting, deleting.

Like the calls of `topics`, each runs in a `call_scope`. A group's requests go to its
coordinator, found again when it moves (`AdminCall.to_coordinator`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from aiomq._internal.admin.call import GROUP_ACTIVE_CODES, AdminCall, AdminClient, call_scope
from aiomq._internal.kafka.admin import (
    ListGroupsWithStateRequest,
    consumer_assignment,
    delete_groups_request,
    describe_groups_request,
    listed_groups,
    offset_commit_request,
)
from aiomq._internal.kafka.errors import ErrorCode, broker_error
from aiomq._internal.kafka.requests import entries
from aiomq.cluster import GroupInfo, GroupListing, GroupOffset, MemberInfo, OffsetSpec
from aiomq.errors import GroupNotEmptyError
from aiomq.message import FIRST_OFFSET, LAST_OFFSET

__all__ = [
    "delete_groups",
    "describe_group",
    "group_offsets",
    "list_groups",
    "reset_group_offsets",
]

_INACTIVE_STATES: Final = frozenset({"Empty", "Dead"})


async def list_groups(client: AdminClient) -> list[GroupListing]:
    """Return every consumer group the brokers coordinate, sorted by group id.

    Each broker coordinates some groups, so every broker is asked.
    """
    async with call_scope(client, "list_groups") as call:
        response = await call.metadata([])
        nodes = sorted({b.node_id for b in entries(response, "brokers")})
        answers = await asyncio.gather(
            *(call.send(node, ListGroupsWithStateRequest()) for node in nodes)
        )
    groups: dict[str, GroupListing] = {}
    for answer in answers:
        if answer.error_code:
            raise broker_error(answer.error_code, detail="listing the consumer groups")
        for group_id, protocol_type, state in listed_groups(answer):
            groups[group_id] = GroupListing(
                group_id=group_id, protocol_type=protocol_type, state=state
            )
    return [groups[g] for g in sorted(groups)]


async def describe_group(client: AdminClient, group_id: str) -> GroupInfo:
    """Describe a consumer group; one its coordinator does not know is "Dead".

    Args:
        client: The admin client.
        group_id: The consumer group.
    """
    async with call_scope(client, "describe_group", f" for group {group_id!r}") as call:
        return await _describe_group(call, group_id)


async def group_offsets(
    client: AdminClient, group_id: str, names: list[str] | None
) -> list[GroupOffset]:
    """Return a group's committed offsets and lag, sorted by topic and partition.

    Args:
        client: The admin client.
        group_id: The consumer group.
        names: Every partition of these topics (checked, each once); None for every
            partition where the group has a committed offset.
    """
    async with call_scope(client, "group_offsets", f" for group {group_id!r}") as call:
        if names is None:
            # Ask about every partition of the cluster, not with a null topic list:
            # not every broker answers that form (Tansu drops the connection).
            response = await call.metadata(None)
            partitions = {
                t.topic: [p.partition for p in t.partitions]
                for t in entries(response, "topics")
                if t.error_code == ErrorCode.NONE
            }
        else:
            described = await call.describe(names)
            partitions = {n: [p.partition for p in described[n].partitions] for n in names}
        committed = await call.committed(group_id, partitions)
        if names is None:
            committed = {tp: off for tp, off in committed.items() if off >= 0}
        ends: dict[str, dict[int, int]] = {}
        for topic in sorted({t for t, _ in committed}):
            ends[topic] = await call.list_offsets(topic, LAST_OFFSET)
    result = []
    for (topic, partition), offset in sorted(committed.items()):
        end = ends[topic].get(partition, -1)
        lag = max(0, end - offset) if offset >= 0 and end >= 0 else -1
        result.append(
            GroupOffset(topic=topic, partition=partition, committed=offset, end=end, lag=lag)
        )
    return result


async def reset_group_offsets(
    client: AdminClient, group_id: str, topic: str, to: OffsetSpec
) -> dict[tuple[str, int], int]:
    """Set a group's committed offsets for every partition of a topic.

    Args:
        client: The admin client.
        group_id: The consumer group; it must have no members.
        topic: The topic whose partitions to reset.
        to: FIRST_OFFSET, LAST_OFFSET, an offset (moved into each partition's range of
            kept messages) or a timezone-aware time.

    Returns:
        The new committed offset of each `(topic, partition)`.

    Raises:
        GroupNotEmptyError: The group has members.
    """
    about = f" for group {group_id!r} and topic {topic!r}"
    async with call_scope(client, "reset_group_offsets", about) as call:
        group = await _describe_group(call, group_id)
        if group.state not in _INACTIVE_STATES:
            raise _group_active(group_id, group.state, len(group.members))
        if isinstance(to, int) and to >= 0:
            first = await call.list_offsets(topic, FIRST_OFFSET)
            last = await call.list_offsets(topic, LAST_OFFSET)
            offsets = {p: min(max(to, first[p]), last.get(p, to)) for p in first}
        else:
            offsets = await call.list_offsets(topic, to)
        response = await call.to_coordinator(
            group_id,
            offset_commit_request(group_id, topic, offsets),
            lambda r: (p.error_code for t in entries(r, "topics") for p in t.partitions),
        )
    for entry in entries(response, "topics"):
        for p in entry.partitions:
            if p.error_code in GROUP_ACTIVE_CODES:
                raise _group_active(group_id, "active", None)
            if p.error_code:
                raise broker_error(
                    p.error_code,
                    topic=entry.topic,
                    partition=p.partition,
                    detail=f"group {group_id!r}",
                )
    result = {(topic, p): o for p, o in sorted(offsets.items())}
    client._log.info(
        "group_offsets_reset",
        group_id=group_id,
        topic=topic,
        offsets=dict(sorted(offsets.items())),
    )
    return result


async def delete_groups(client: AdminClient, group_ids: Sequence[str]) -> None:
    """Delete consumer groups one by one; the first refusal ends the call.

    Args:
        client: The admin client.
        group_ids: The groups, each once; at least one.
    """
    async with call_scope(client, "delete_groups", f" for groups {group_ids!r}") as call:
        for group_id in group_ids:
            response = await call.to_coordinator(
                group_id,
                delete_groups_request(group_id),
                lambda r: (e.error_code for e in entries(r, "results")),
            )
            for entry in entries(response, "results"):
                if entry.error_code:
                    raise broker_error(entry.error_code, detail=f"group {entry.group_id!r}")
            client._log.info("group_deleted", group_id=group_id)


async def _describe_group(call: AdminCall, group_id: str) -> GroupInfo:
    """Ask the group's coordinator to describe it, within a call already running."""
    response = await call.to_coordinator(
        group_id,
        describe_groups_request(group_id),
        lambda r: (g.error_code for g in entries(r, "groups")),
    )
    for group in entries(response, "groups"):
        if group.group != group_id:
            continue
        if group.error_code:
            raise broker_error(group.error_code, detail=f"group {group_id!r}")
        members = (_member_info(m, group.protocol_type) for m in group.members)
        return GroupInfo(
            group_id=group.group,
            state=group.state,
            protocol_type=group.protocol_type or "",
            protocol=group.protocol or "",
            members=tuple(sorted(members, key=lambda m: m.member_id)),
        )
    return GroupInfo(group_id=group_id, state="Dead", protocol_type="", protocol="", members=())


def _member_info(entry: Any, protocol_type: str | None) -> MemberInfo:
    """Build a `MemberInfo` from a member entry of a DescribeGroups response.

    The assignment is decoded only for groups of the consumer protocol; it is empty
    otherwise, or when it does not decode.
    """
    raw = entry.member_assignment
    assignment: tuple[tuple[str, int], ...] = ()
    if protocol_type == "consumer" and raw:
        assignment = consumer_assignment(raw)
    return MemberInfo(
        member_id=entry.member_id,
        client_id=entry.client_id or "",
        host=entry.client_host or "",
        assignment=assignment,
    )


def _group_active(group_id: str, state: str, members: int | None) -> GroupNotEmptyError:
    """The error for resetting the offsets of a group that has members (a count if known)."""
    count = "" if members is None else f" with {members} member{'s' if members != 1 else ''}"
    return GroupNotEmptyError(
        f"group {group_id!r} is {state}{count}: stop its consumers (and wait for it to become "
        "Empty) before resetting its offsets",
        group_id=group_id,
        state=state,
    )
