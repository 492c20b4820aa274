"""``orchestra dag URI|RUN --format svg|png|html|mermaid|dot|ascii``: the DAG as a picture or text.

With a run id the stages carry their status (coloured as in the UI) and duration. SVG and PNG
need no graphviz and no browser: the layout is grandalf's Sugiyama layered layout (pure Python,
the same family of algorithm as dagre in the browser), drawn left to right; PNG rasterises the
same drawing with Pillow. Both are extras (``pip install 'orchestra[svg]'``, ``'orchestra[png]'``);
``html`` is a self-contained page that lays the graph out with the shipped dagre, like the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import escape

from orchestra.app import api, browse
from orchestra.core import extras
from orchestra.core.errors import BadInputError
from orchestra.ui import report

FORMATS = ("ascii", "dot", "mermaid", "svg", "png", "html")
COLORS = {"FINISHED": "#2f9e44", "LOADED": "#1c7ed6", "FAILED": "#e03131", "SKIPPED": "#adb5bd",
          "RUNNING": "#f59f00", "PENDING": "#e9ecef", "KILLED": "#862e9c", None: "#f1f3f5"}
_LIGHT = ("PENDING", "SKIPPED", "RUNNING", None)
_NODE_H, _CHAR_W, _GAP_X, _GAP_Y, _MARGIN = 50, 7.6, 64, 22, 16


@dataclass(frozen=True, slots=True)
class DagView:
    """What is drawn: a title, the stages in order with status and subtitle, the edges."""

    title: str
    stages: tuple[dict[str, Any], ...]
    edges: tuple[tuple[str, str], ...]
    run_id: str | None = None


def _is_run_id(target: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F]{6,32}", target)) and not Path(target).exists()


def view_of(target: str, version: str | None = None) -> DagView:
    """The DAG of a project URI, or of a stored run (with statuses) when ``target`` is a run id."""
    if _is_run_id(target):
        run = browse.run_detail(target)
        stages = tuple({**s, "sub": _subtitle(s)} for s in run["stages"])
        return DagView(f"run {run['run_name'] or run['run_id'][:8]} ({run['status'].lower()})", stages,
                       tuple((a, b) for a, b in run["edges"]), run["run_id"])
    spec, graph = api.validate(target, version)
    stages = tuple({"name": name, "status": None, "sub": ""} for name in graph.order)
    edges = tuple((parent, name) for name in graph.order for parent in graph.parents[name])
    return DagView(spec.name or target, stages, edges)


def _subtitle(stage: dict[str, Any]) -> str:
    status = stage["status"]
    if status == "LOADED" and stage.get("loaded_from"):
        return f"loaded from {stage['loaded_from']['run_id'][:8]}"
    if stage.get("duration") is not None and status not in ("SKIPPED", "LOADED"):
        return f"{status.lower()} · {stage['duration']:.2f}s"
    return status.lower()


def render(view: DagView, fmt: str) -> str | bytes:
    """The drawing in ``fmt`` (bytes for png)."""
    if fmt == "svg":
        return svg(view)
    if fmt == "png":
        return png(view)
    if fmt == "html":
        return report.dag_page({"title": view.title, "run_id": view.run_id or "", "now": 0,
                                "stages": list(view.stages), "edges": [list(e) for e in view.edges]})
    if fmt == "dot":
        return _dot(view)
    if fmt == "mermaid":
        return _mermaid(view)
    return _ascii(view)


def _label(stage: dict[str, Any]) -> str:
    return stage["name"] + (f" [{stage['sub']}]" if stage.get("sub") else "")


def _ascii(view: DagView) -> str:
    parents: dict[str, list[str]] = {s["name"]: [] for s in view.stages}
    for a, b in view.edges:
        parents[b].append(a)
    return "\n".join(_label(s) + (f" <- {', '.join(parents[s['name']])}" if parents[s["name"]] else "")
                     for s in view.stages)


def _dot(view: DagView) -> str:
    lines = ["digraph orchestra {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="sans-serif"];']
    for s in view.stages:
        text = _label(s).replace('"', '\\"')
        lines.append(f'  "{s["name"]}" [label="{text}", fillcolor="{COLORS.get(s["status"], COLORS[None])}"];')
    lines += [f'  "{a}" -> "{b}";' for a, b in view.edges]
    return "\n".join(lines + ["}"])


def _mermaid(view: DagView) -> str:
    ids = {s["name"]: f"s{i}" for i, s in enumerate(view.stages)}
    lines = ["flowchart LR"]
    for s in view.stages:
        text = _label(s).replace('"', "'")
        lines.append(f'  {ids[s["name"]]}["{text}"]' + (f":::{s['status'].lower()}" if s["status"] else ""))
    lines += [f"  {ids[a]} --> {ids[b]}" for a, b in view.edges]
    for status in sorted({s["status"] for s in view.stages if s["status"]}):
        lines.append(f"  classDef {status.lower()} fill:{COLORS[status]},color:{'#212529' if status in _LIGHT else '#fff'}")
    return "\n".join(lines)


@dataclass
class _Box:
    """A node's box in the drawing: size and top-left corner."""

    w: float
    h: float
    xy: tuple[float, float] = (0.0, 0.0)


class _Path:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, points: Sequence[tuple[float, float]]) -> None:
        self.points = list(points)


def layout(view: DagView, fmt: str = "svg") -> tuple[dict[str, tuple[float, float, float, float]],
                                                     dict[tuple[str, str], list], float, float]:
    """Boxes ``name → (x, y, w, h)`` (top-left corner), edge polylines, width and height, left to right."""
    graphs, layouts = (extras.load(f"grandalf.{name}", f"dag --format {fmt}", where=f"--format {fmt}", extra=fmt,
                                   alternative="or use --format html, mermaid or dot")
                       for name in ("graphs", "layouts"))
    Edge, Graph, Vertex, SugiyamaLayout = graphs.Edge, graphs.Graph, graphs.Vertex, layouts.SugiyamaLayout

    widths = {s["name"]: max(110.0, _CHAR_W * max(len(s["name"]), 0.85 * len(s.get("sub") or "")) + 28)
              for s in view.stages}
    vertices = {name: Vertex(name) for name in widths}
    for name, vertex in vertices.items():  # laid out top-down with swapped sizes, then transposed
        vertex.view = _Box(_NODE_H, widths[name])
    edges = {}
    for a, b in view.edges:
        edge = Edge(vertices[a], vertices[b])
        edge.view = _Path()
        edges[(a, b)] = edge
    graph = Graph(list(vertices.values()), list(edges.values()))
    offset = 0.0
    boxes: dict[str, tuple[float, float, float, float]] = {}
    paths: dict[tuple[str, str], list] = {}
    for component in graph.C:
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace, sugiyama.yspace = _GAP_Y, _GAP_X
        sugiyama.init_all()
        sugiyama.draw()
        names = [v.data for v in component.sV]
        low = min(vertices[n].view.xy[0] - _NODE_H / 2 for n in names)
        top = min(vertices[n].view.xy[1] - widths[n] / 2 for n in names)
        for n in names:
            x, y = vertices[n].view.xy
            boxes[n] = (y - top - widths[n] / 2 + _MARGIN, x - low - _NODE_H / 2 + offset + _MARGIN, widths[n], _NODE_H)
        for key, edge in edges.items():
            if key[0] in names:
                paths[key] = [(y - top + _MARGIN, x - low + offset + _MARGIN) for x, y in edge.view.points]
        offset += max(vertices[n].view.xy[0] - low + _NODE_H / 2 for n in names) + _GAP_Y
    for (a, b), points in paths.items():  # from the source's right side to the target's left side
        ax, ay, aw, ah = boxes[a]
        bx, by, _bw, bh = boxes[b]
        points[0], points[-1] = (ax + aw, ay + ah / 2), (bx - 2, by + bh / 2)
    width = max((x + w for x, _y, w, _h in boxes.values()), default=0) + _MARGIN
    height = max((y + h for _x, y, _w, h in boxes.values()), default=0) + _MARGIN
    return boxes, paths, width, height


def svg(view: DagView) -> str:
    boxes, paths, width, height = layout(view)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M 0 0 L 10 5 L 0 10 z" fill="#868e96"/></marker></defs>',
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>']
    for points in paths.values():
        d = " ".join(f"{'M' if i == 0 else 'L'} {x:.1f} {y:.1f}" for i, (x, y) in enumerate(points))
        out.append(f'<path d="{d}" fill="none" stroke="#adb5bd" stroke-width="1.6" marker-end="url(#arrow)"/>')
    for stage in view.stages:
        x, y, w, h = boxes[stage["name"]]
        fill = COLORS.get(stage["status"], COLORS[None])
        ink = "#212529" if stage["status"] in _LIGHT else "#ffffff"
        out.append(f'<g class="node" data-stage="{escape(stage["name"])}" data-status="{stage["status"] or ""}">'
                   f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="8" fill="{fill}" '
                   f'stroke="#00000030"/><text x="{x + w / 2:.1f}" y="{y + (21 if stage.get("sub") else 30):.1f}" '
                   f'text-anchor="middle" font-size="13" font-weight="600" fill="{ink}">{escape(stage["name"])}</text>'
                   + (f'<text x="{x + w / 2:.1f}" y="{y + 38:.1f}" text-anchor="middle" font-size="11" '
                      f'fill="{ink}">{escape(stage["sub"])}</text>' if stage.get("sub") else "") + "</g>")
    return "\n".join(out + ["</svg>"]) + "\n"


def png(view: DagView, scale: int = 2) -> bytes:
    """The same drawing rasterised with Pillow (an optional dependency)."""
    Image, ImageDraw, ImageFont = (extras.load(f"PIL.{name}", "dag --format png", where="--format png",
                                               alternative="or use --format svg")
                                   for name in ("Image", "ImageDraw", "ImageFont"))
    import io

    boxes, paths, width, height = layout(view, "png")
    image = Image.new("RGB", (int(width * scale), int(height * scale)), "white")
    draw = ImageDraw.Draw(image)
    bold = ImageFont.load_default(size=13 * scale)
    small = ImageFont.load_default(size=11 * scale)
    for points in paths.values():
        scaled = [(x * scale, y * scale) for x, y in points]
        draw.line(scaled, fill="#adb5bd", width=2 * scale)
        (x1, y1), (x2, y2) = scaled[-2], scaled[-1]
        _arrow(draw, x1, y1, x2, y2, 8 * scale)
    for stage in view.stages:
        x, y, w, h = (v * scale for v in boxes[stage["name"]])
        draw.rounded_rectangle((x, y, x + w, y + h), radius=8 * scale, fill=COLORS.get(stage["status"], COLORS[None]),
                               outline="#ced4da")
        ink = "#212529" if stage["status"] in _LIGHT else "#ffffff"
        name_y = y + (h * 0.36 if stage.get("sub") else h / 2)
        draw.text((x + w / 2, name_y), stage["name"], fill=ink, font=bold, anchor="mm")
        if stage.get("sub"):
            draw.text((x + w / 2, y + h * 0.72), stage["sub"], fill=ink, font=small, anchor="mm")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _arrow(draw: Any, x1: float, y1: float, x2: float, y2: float, size: float) -> None:
    import math

    angle = math.atan2(y2 - y1, x2 - x1)
    left = (x2 - size * math.cos(angle - 0.45), y2 - size * math.sin(angle - 0.45))
    right = (x2 - size * math.cos(angle + 0.45), y2 - size * math.sin(angle + 0.45))
    draw.polygon([(x2, y2), left, right], fill="#868e96")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise BadInputError(f"unknown format {fmt!r}", where="--format", hint=", ".join(FORMATS))
    return fmt
