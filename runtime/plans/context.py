"""What a plan runs against: graph routing (parse-critical vs reconstruction), the coder, streams, stats, and
progress.

Progress counts graph calls: one step per :meth:`PlanContext.run`, so a spatial-context plan reports each
wavefront step, a slice plan each slice's graphs, a staged coder each stage, the others each network. A plan
announces its calls with :meth:`PlanContext.expect` as soon as it knows them (a loop's length once the
hyper-synthesis has given the latent size), and ``progress(done, total)`` is called after every graph call;
``done`` rises by one each time and the last call has ``done == total``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..container import Stream
from ..errors import BitstreamError


@dataclass
class Stats:
    network_s: dict = field(default_factory=dict)  # graph name -> seconds (summed over calls)
    entropy_s: float = 0.0
    network_calls: int = 0
    coder_calls: int = 0
    sequential_steps: int = 0  # dependent network+coder rounds (for spatial_context: the context steps)
    symbols: int = 0
    loop_s: float = 0.0  # wall time of the autoregressive loop (spatial_context), networks and coder included

    def as_dict(self) -> dict:
        net = sum(self.network_s.values())
        return {
            "network_s": net,
            "network_by_graph_s": dict(self.network_s),
            "entropy_s": self.entropy_s,
            "network_calls": self.network_calls,
            "coder_calls": self.coder_calls,
            "sequential_steps": self.sequential_steps,
            "symbols": self.symbols,
            "loop_s": self.loop_s,
        }


class PlanContext:
    """Routes graph calls and coder calls for one encode or decode.

    ``recon`` runs reconstruction-only graphs, ``parse`` runs parse-critical graphs (the pinned path by
    default); ``prefix`` selects a width of a slimmable bundle (``w48.``); ``progress(done, total)``, when
    given, is called after each graph call (module docstring); ``keep_symbols`` keeps a copy of every stream's
    symbols in :attr:`symbols`.
    """

    def __init__(
        self,
        bundle,
        recon,
        parse,
        mode: str,
        substreams: int = 1,
        prefix: str = "",
        streams: dict | None = None,
        progress: Callable[[int, int], object] | None = None,
        keep_symbols: bool = False,
    ):
        self.bundle, self.recon, self.parse = bundle, recon, parse
        self.mode, self.substreams, self.prefix = mode, substreams, prefix
        self.progress = progress
        self.steps_done = self.steps_total = 0
        self.stats = Stats()
        self.out_streams: list[Stream] = []
        self.in_streams: dict[str, Stream] = streams or {}
        # stream kind -> copies of its symbols in coding order, with keep_symbols
        self.symbols: dict[str, list[np.ndarray]] | None = {} if keep_symbols else None
        from .. import coder

        self._coder = coder

    # ---- networks -----------------------------------------------------------------------------------------
    def run(self, graph: str, **feeds) -> dict:
        name = self.prefix + graph
        backend = self.parse if self.bundle.graph(name).parse_critical else self.recon
        t0 = time.perf_counter()
        out = backend.run(name, feeds)
        self.stats.network_s[graph] = self.stats.network_s.get(graph, 0.0) + time.perf_counter() - t0
        self.stats.network_calls += 1
        self.steps_done += 1
        if self.progress is not None:
            self.steps_total = max(self.steps_total, self.steps_done)  # a plan that announced too few
            self.progress(self.steps_done, self.steps_total)
        return out

    def expect(self, calls: int) -> None:
        """Announce ``calls`` more graph calls of this encode/decode (the progress total)."""
        self.steps_total += int(calls)

    def tables(self, model: str):
        return self.bundle.entropy(self.prefix + model)

    # ---- coding -------------------------------------------------------------------------------------------
    def keep(self, kind: str, symbols: np.ndarray) -> None:
        """Keep a copy of ``symbols`` of stream ``kind`` (in coding order) when :attr:`symbols` is a dict."""
        if self.symbols is not None:
            self.symbols.setdefault(kind, []).append(np.array(symbols, dtype=np.int32).reshape(-1))

    def encode(self, kind: str, model: str, symbols: np.ndarray, indexes: np.ndarray) -> None:
        c = self._coder
        sym = np.ascontiguousarray(symbols, dtype=np.int32).reshape(-1)
        idx = np.ascontiguousarray(indexes, dtype=np.int32).reshape(-1)
        t0 = time.perf_counter()
        data = c.encode(self.tables(model).coder_tables(), sym, idx, mode=self.mode, substreams=self.substreams)
        crc = c.symbols_crc(sym)
        self.stats.entropy_s += time.perf_counter() - t0
        self.stats.coder_calls += 1
        self.stats.symbols += sym.size
        self.keep(kind, sym)
        self.out_streams.append(Stream(kind, int(sym.size), bytes(data), int(crc)))

    def stream_encoder(self, kind: str, model: str) -> "_IncrementalEncoder":
        """An incremental encoder for stream ``kind`` (autoregressive plans); ``close()`` adds the stream."""
        return _IncrementalEncoder(self, kind, model)

    def stream_decoder(self, kind: str, model: str) -> "_IncrementalDecoder":
        """An incremental decoder of stream ``kind``; ``close()`` runs the final-state, count and CRC checks."""
        s = self.in_streams.get(kind)
        if s is None:
            raise BitstreamError(f"stream '{kind}' is missing from the bitstream (has {sorted(self.in_streams)})")
        return _IncrementalDecoder(self, s, model)

    def decode(self, kind: str, model: str, indexes: np.ndarray) -> np.ndarray:
        """Decode stream ``kind`` with ``indexes``; raises BitstreamError naming the stream on any mismatch."""
        s = self.in_streams.get(kind)
        if s is None:
            raise BitstreamError(f"stream '{kind}' is missing from the bitstream (has {sorted(self.in_streams)})")
        idx = np.ascontiguousarray(indexes, dtype=np.int32).reshape(-1)
        if s.n_symbols != idx.size:
            raise BitstreamError(f"stream '{kind}': header says {s.n_symbols} symbols, the model expects {idx.size}")
        c = self._coder
        t0 = time.perf_counter()
        try:
            sym = c.decode(self.tables(model).coder_tables(), s.payload, idx, mode=self.mode)
        except BitstreamError as e:
            raise BitstreamError(f"stream '{kind}': {e}") from None
        crc = int(c.symbols_crc(sym))
        self.stats.entropy_s += time.perf_counter() - t0
        self.stats.coder_calls += 1
        self.stats.symbols += idx.size
        if crc != s.symbols_crc:
            raise BitstreamError(
                f"stream '{kind}': decoded-symbol CRC {crc:08x} != recorded {s.symbols_crc:08x} "
                "(the parse-critical networks differ from the encoder's)"
            )
        self.keep(kind, sym)
        return np.asarray(sym, dtype=np.int32).reshape(indexes.shape)


class _IncrementalEncoder:
    def __init__(self, ctx: PlanContext, kind: str, model: str):
        self.ctx, self.kind, self.n, self.crc = ctx, kind, 0, 0
        self.enc = ctx._coder.StreamEncoder(ctx.tables(model).coder_tables(), mode=ctx.mode)

    def encode(self, symbols: np.ndarray, indexes: np.ndarray) -> None:
        sym = np.ascontiguousarray(symbols, dtype="<i4").reshape(-1)
        t0 = time.perf_counter()
        self.enc.encode(sym, np.ascontiguousarray(indexes, dtype=np.int32).reshape(-1))
        self.crc = self.ctx._coder.crc32(sym.view(np.uint8), self.crc)
        self.ctx.stats.entropy_s += time.perf_counter() - t0
        self.ctx.stats.coder_calls += 1
        self.ctx.stats.symbols += sym.size
        self.ctx.keep(self.kind, sym)
        self.n += sym.size

    def close(self) -> None:
        t0 = time.perf_counter()
        data = self.enc.flush()
        self.ctx.stats.entropy_s += time.perf_counter() - t0
        self.ctx.out_streams.append(Stream(self.kind, self.n, bytes(data), int(self.crc)))


class _IncrementalDecoder:
    def __init__(self, ctx: PlanContext, stream: Stream, model: str):
        self.ctx, self.stream, self.n, self.crc = ctx, stream, 0, 0
        self.dec = ctx._coder.StreamDecoder(ctx.tables(model).coder_tables(), stream.payload, mode=ctx.mode)

    def decode(self, indexes: np.ndarray) -> np.ndarray:
        idx = np.ascontiguousarray(indexes, dtype=np.int32).reshape(-1)
        if self.n + idx.size > self.stream.n_symbols:
            raise BitstreamError(
                f"stream '{self.stream.kind}': the model asks for more than the "
                f"{self.stream.n_symbols} symbols the header records"
            )
        t0 = time.perf_counter()
        try:
            sym = np.asarray(self.dec.decode(idx), dtype="<i4")
        except BitstreamError as e:
            raise BitstreamError(f"stream '{self.stream.kind}': {e}") from None
        self.crc = self.ctx._coder.crc32(sym.view(np.uint8), self.crc)
        self.ctx.stats.entropy_s += time.perf_counter() - t0
        self.ctx.stats.coder_calls += 1
        self.ctx.stats.symbols += idx.size
        self.ctx.keep(self.stream.kind, sym)
        self.n += idx.size
        return sym.reshape(indexes.shape)

    def close(self) -> None:
        k = self.stream.kind
        if self.n != self.stream.n_symbols:
            raise BitstreamError(f"stream '{k}': decoded {self.n} symbols, header says {self.stream.n_symbols}")
        try:
            self.dec.finish()
        except BitstreamError as e:
            raise BitstreamError(f"stream '{k}': {e}") from None
        if int(self.crc) != self.stream.symbols_crc:
            raise BitstreamError(
                f"stream '{k}': decoded-symbol CRC {int(self.crc):08x} != recorded "
                f"{self.stream.symbols_crc:08x} (the parse-critical networks differ from the encoder's)"
            )
