"""Shared helpers for Amaranth-simulator testbenches (async, `Simulator.add_testbench`)."""

from __future__ import annotations

__all__ = ["stream_put", "stream_get", "set_fields"]


def set_fields(ctx, view, values: dict) -> None:
    for name, value in values.items():
        ctx.set(getattr(view, name), value)


async def stream_put(ctx, stream, payload: dict) -> None:
    """Offer one beat and wait until it is taken."""
    ctx.set(stream.valid, 1)
    set_fields(ctx, stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Take one beat; returns the payload as sampled at the transfer."""
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload
