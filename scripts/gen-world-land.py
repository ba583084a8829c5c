#!/usr/bin/env python3
"""gen-world-land.py — writes conf/world-land.txt, the continents' outline the
status page draws (GET /status), from Natural Earth's 1:110m land polygons as
the npm package world-atlas 2.0.2 ships them (land-110m.json, TopoJSON).

    npm pack world-atlas@2.0.2 && tar xzf world-atlas-2.0.2.tgz
    python3 scripts/gen-world-land.py package/land-110m.json >conf/world-land.txt
    perl scripts/gen-status-html.pl

Each ring is simplified (Douglas-Peucker, 1 degree), rings under 4 square
degrees dropped, and written as one SVG path in the page's coordinates
(x = longitude, y = -latitude), to a tenth of a degree.  See
conf/world-land.README.md for the data's source and licence.
"""
import json
import sys


def decode_arcs(topo):
    sx, sy = topo["transform"]["scale"]
    tx, ty = topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x += dx
            y += dy
            pts.append((x * sx + tx, y * sy + ty))
        arcs.append(pts)
    return arcs


def ring_points(ring, arcs):
    pts = []
    for i in ring:
        a = arcs[i] if i >= 0 else list(reversed(arcs[~i]))
        pts.extend(a if not pts else a[1:])
    return pts


def simplify(pts, tol):
    if len(pts) < 3:
        return pts
    keep = [False] * len(pts)
    keep[0] = keep[-1] = True
    stack = [(0, len(pts) - 1)]
    while stack:
        a, b = stack.pop()
        (x1, y1), (x2, y2) = pts[a], pts[b]
        dx, dy = x2 - x1, y2 - y1
        norm = (dx * dx + dy * dy) ** 0.5
        best, far = -1.0, -1
        for i in range(a + 1, b):
            x, y = pts[i]
            d = abs(dy * (x - x1) - dx * (y - y1)) / norm if norm else ((x - x1) ** 2 + (y - y1) ** 2) ** 0.5
            if d > best:
                best, far = d, i
        if far >= 0 and best > tol:
            keep[far] = True
            stack += [(a, far), (far, b)]
    return [p for p, k in zip(pts, keep) if k]


def num(v):
    t = "%.1f" % v
    t = t.rstrip("0").rstrip(".") if "." in t else t
    return "0" if t in ("-0", "") else t


def unwrap(pts):
    """A ring that crosses the antimeridian away from a pole, made continuous
    (longitudes past 180); one along the pole's edge (Antarctica) is kept."""
    out = [pts[0]]
    shift = 0
    for (x0, y0), (x, y) in zip(pts, pts[1:]):
        if abs(x - x0) > 180 and abs(y) < 85 and abs(y0) < 85:
            shift += 360 if x < x0 else -360
        out.append((x + shift, y))
    if min(x for x, _ in out) < -180:
        out = [(x + 360, y) for x, y in out]
    return out


def area(pts):
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]))) / 2


def main():
    topo = json.load(open(sys.argv[1]))
    arcs = decode_arcs(topo)
    out = []
    for geom in topo["objects"]["land"]["geometries"]:
        polys = geom["arcs"] if geom["type"] == "MultiPolygon" else [geom["arcs"]]
        for poly in polys:
            for ring in poly[:1]:  # outer rings only: the lakes are not drawn
                pts = unwrap(simplify(ring_points(ring, arcs), 1.0))
                if len(pts) < 4 or area(pts) < 4:
                    continue
                # a ring across the antimeridian is drawn twice, 360 degrees apart (the map clips)
                shifts = [0] + ([-360] if max(x for x, _ in pts) > 180 else [])
                for s in shifts:
                    out.append("M" + "L".join("%s %s" % (num(x + s), num(-y)) for x, y in pts[:-1]) + "Z")
    sys.stdout.write("\n".join(out) + "\n")


main()
