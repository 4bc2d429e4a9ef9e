#!/usr/bin/env python3
"""Regenerates schema_table.rs: the merge metadata of the built-in kinds.

It reads the Go API types of upstream (k8s.io/api and k8s.io/apimachinery's meta/v1),
takes from each field its `patchStrategy`/`patchMergeKey` tags and its `+listType`,
`+listMapKey`, `+mapType` markers (and `+structType` on types), and writes a compact
type graph that keeps only the fields that can hold a list, a map or a struct.

usage: schema_gen.py API_REPO_DIR APIMACHINERY_REPO_DIR > schema_table.rs
"""

import os
import re
import sys

API, MACHINERY = sys.argv[1], sys.argv[2]

FIELD_RE = re.compile(r"^\s+(\w+)\s+([^\s`]+)\s+`([^`]*)`")
EMBED_RE = re.compile(r"^\s+([\w.*]+)\s+`([^`]*)`\s*$")
EMBED_NOTAG_RE = re.compile(r"^\s+([\w.*]+)\s*$")
TYPE_RE = re.compile(r"^type (\w+) (.+?)\s*(\{)?\s*$")
IMPORT_RE = re.compile(r'^\s*(\w+)?\s*"([^"]+)"')


def tag(tags, key):
    m = re.search(key + r':"([^"]*)"', tags)
    return m.group(1) if m else None


def pkg_of_import(path):
    if path.startswith("k8s.io/api/"):
        return path[len("k8s.io/api/"):]
    if path == "k8s.io/apimachinery/pkg/apis/meta/v1":
        return "meta/v1"
    return None


types = {}  # "pkg.Name" -> dict(kind, fields|elem|value, markers)
roots = {}  # (group, kind) -> (rank, "pkg.Name")


def parse_file(pkg, text, group, rank):
    imports = {}
    lines = text.split("\n")
    in_import = False
    for ln in lines:
        if ln.startswith("import ("):
            in_import = True
            continue
        if in_import:
            if ln.startswith(")"):
                in_import = False
                continue
            m = IMPORT_RE.match(ln)
            if m:
                alias = m.group(1) or m.group(2).rsplit("/", 1)[-1]
                imports[alias] = pkg_of_import(m.group(2))
        elif ln.startswith("import "):
            m = IMPORT_RE.match(ln[len("import "):])
            if m:
                alias = m.group(1) or m.group(2).rsplit("/", 1)[-1]
                imports[alias] = pkg_of_import(m.group(2))

    def qual(t):
        t = t.lstrip("*")
        if t.startswith("[]"):
            if t == "[]byte":
                return ("scalar",)
            return ("list", qual(t[2:]))
        if t.startswith("map["):
            depth, i = 0, 3
            while True:
                if t[i] == "[":
                    depth += 1
                elif t[i] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            return ("map", qual(t[i + 1:]))
        if "." in t:
            alias, name = t.split(".", 1)
            p = imports.get(alias)
            if p is None:
                return ("scalar",)
            return ("named", p + "." + name)
        if t in ("string", "bool", "int", "int32", "int64", "float32", "float64",
                 "uint", "uint8", "uint16", "uint32", "uint64", "byte", "interface{}", "any"):
            return ("scalar",)
        return ("named", pkg + "." + t)

    comments = []
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("//"):
            comments.append(ln)
            i += 1
            continue
        m = TYPE_RE.match(ln)
        if not m:
            comments = []
            i += 1
            continue
        name, rest, brace = m.group(1), m.group(2), m.group(3)
        markers = [c[2:].strip() for c in comments]
        comments = []
        full = pkg + "." + name
        if rest.startswith("struct") and brace:
            fields = []
            fcomments = []
            has_typemeta = False
            i += 1
            while i < len(lines) and not lines[i].startswith("}"):
                fl = lines[i]
                i += 1
                s = fl.strip()
                if s.startswith("//"):
                    fcomments.append(s[2:].strip())
                    continue
                fm = FIELD_RE.match(fl)
                em = EMBED_RE.match(fl) or EMBED_NOTAG_RE.match(fl)
                fmarkers, fcomments = fcomments, []
                if fm:
                    gname, gtype, tags = fm.groups()
                    js = tag(tags, "json")
                    if js is None:
                        continue
                    jname = js.split(",")[0]
                    if jname == "-":
                        continue
                    if jname == "" and ("inline" in js or js == ""):
                        fields.append({"inline": qual(gtype)})
                        continue
                    fields.append({
                        "name": jname,
                        "type": qual(gtype),
                        "ps": tag(tags, "patchStrategy"),
                        "pmk": tag(tags, "patchMergeKey"),
                        "markers": fmarkers,
                    })
                elif em:
                    etype = em.group(1)
                    tags = em.group(2) if em.re is EMBED_RE else ""
                    if etype.endswith("TypeMeta"):
                        has_typemeta = True
                        continue
                    js = tag(tags, "json") if tags else ""
                    if js is None:
                        continue
                    jname = js.split(",")[0]
                    if jname == "":
                        fields.append({"inline": qual(etype)})
                    elif jname != "-":
                        fields.append({
                            "name": jname,
                            "type": qual(etype),
                            "ps": tag(tags, "patchStrategy"),
                            "pmk": tag(tags, "patchMergeKey"),
                            "markers": fmarkers,
                        })
            types[full] = {"kind": "struct", "fields": fields, "markers": markers}
            if has_typemeta and group is not None and not name.endswith("List") \
                    and any(f.get("name") == "metadata" for f in fields):
                key = (group, name)
                if key not in roots or roots[key][0] <= rank:
                    roots[key] = (rank, full)
        else:
            q = qual(rest.split("//")[0].strip())
            if q[0] in ("list", "map"):
                types[full] = {"kind": q[0], "elem": q[1], "markers": markers}
            elif q[0] == "named":
                types[full] = {"kind": "alias", "elem": q, "markers": markers}
            i += 1


def version_rank(v):
    m = re.match(r"v(\d+)(alpha|beta)?(\d*)$", v)
    if not m:
        return -1
    major = int(m.group(1))
    stage = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
    return stage * 1000 + major * 10 + int(m.group(3) or 0)


for gdir in sorted(os.listdir(API)):
    gpath = os.path.join(API, gdir)
    if not os.path.isdir(gpath) or gdir.startswith(".") or gdir in ("admission", "imagepolicy", "apidiscovery"):
        continue
    for vdir in sorted(os.listdir(gpath)):
        vpath = os.path.join(gpath, vdir)
        rank = version_rank(vdir)
        if rank < 0 or not os.path.isdir(vpath):
            continue
        group = None
        for meta in ("doc.go", "register.go"):
            mp = os.path.join(vpath, meta)
            if os.path.exists(mp):
                m = re.search(r'\+groupName=(\S*)|GroupName = "([^"]*)"', open(mp).read())
                if m:
                    group = m.group(1) or m.group(2)
        if gdir == "core":
            group = ""
        for fn in sorted(os.listdir(vpath)):
            if fn.startswith("types") and fn.endswith(".go") and "generated" not in fn:
                parse_file(gdir + "/" + vdir, open(os.path.join(vpath, fn)).read(), group, rank)

parse_file("meta/v1", open(os.path.join(MACHINERY, "pkg/apis/meta/v1/types.go")).read(), None, 0)


def resolve(q):
    """Follows named aliases; returns ("struct", full) | ("list", q) | ("map", q) | ("scalar",)."""
    seen = 0
    markers = []
    while q[0] == "named" and seen < 10:
        t = types.get(q[1])
        if t is None:
            return ("scalar",), markers
        markers = markers + t["markers"]
        if t["kind"] == "struct":
            return ("struct", q[1]), markers
        if t["kind"] in ("list", "map"):
            return (t["kind"], t["elem"]), markers
        q = t["elem"]
        seen += 1
    return q, markers


def struct_fields(full, depth=0):
    out = []
    for f in types[full]["fields"]:
        if "inline" in f:
            r, _ = resolve(f["inline"])
            if r[0] == "struct" and depth < 5:
                out.extend(struct_fields(r[1], depth + 1))
        else:
            out.append(f)
    return out


order = []
index = {}


def type_id(full):
    if full in index:
        return index[full]
    index[full] = len(order)
    order.append(full)
    return index[full]


def marker(ms, key):
    vals = [m.split("=", 1)[1] for m in ms if m.startswith("+" + key + "=")]
    return vals


def rs_keys(keys):
    return "&[" + ", ".join('"%s"' % k for k in keys) + "]"


def shape_of(q, extra_markers):
    """Rust expression for a Shape plus the struct it leads to, if any."""
    r, tmarkers = resolve(q)
    ms = extra_markers + tmarkers
    if r[0] == "struct":
        return "Shape::Struct(%d)" % type_id(r[1])
    if r[0] == "map":
        inner = shape_of(r[1], [])
        atomic = "true" if "atomic" in marker(ms, "mapType") else "false"
        return "Shape::Map { atomic: %s, value: &%s }" % (atomic, inner)
    if r[0] == "list":
        inner = shape_of(r[1], [])
        lt = (marker(ms, "listType") or ["atomic"])[0]
        if lt == "map":
            apply = "ListStrategy::Map { keys: %s }" % rs_keys(marker(ms, "listMapKey"))
        elif lt == "set":
            apply = "ListStrategy::Set"
        else:
            apply = "ListStrategy::Atomic"
        return "Shape::List { apply: %s, elem: &%s }" % (apply, inner)
    return "Shape::Scalar"


def field_rs(f):
    r, _ = resolve(f["type"])
    if r[0] == "scalar":
        return None
    ps = (f["ps"] or "").split(",")
    pmk = f["pmk"]
    shape = shape_of(f["type"], f["markers"])
    if r[0] == "list":
        if "merge" in ps:
            patch = "ListStrategy::Map { keys: %s }" % rs_keys([pmk]) if pmk else "ListStrategy::Set"
        elif "replace" in ps:
            patch = "ListStrategy::Replace"
        else:
            patch = "ListStrategy::Replace"
    else:
        patch = "ListStrategy::Replace"
    retain = "true" if "retainKeys" in ps else "false"
    return '    Field { name: "%s", patch: %s, retain_keys: %s, shape: %s },' % (
        f["name"], patch, retain, shape)


for key in sorted(roots):
    type_id(roots[key][1])

out_types = []
i = 0
while i < len(order):
    full = order[i]
    fields = []
    for f in sorted(struct_fields(full), key=lambda f: f["name"]):
        line = field_rs(f)
        if line:
            fields.append(line)
    atomic = "true" if "atomic" in marker(types[full]["markers"], "structType") else "false"
    out_types.append((full, atomic, fields))
    i += 1

print("//! Generated by schema_gen.py from upstream's Go API types: do not edit by hand.")
print()
print("use super::schema::{Field, ListStrategy, Shape, TypeDef};")
print()
print("pub(super) static ROOTS: &[(&str, &str, u16)] = &[")
for (g, k) in sorted(roots):
    print('    ("%s", "%s", %d),' % (g, k, index[roots[(g, k)][1]]))
print("];")
print()
print("pub(super) static TYPES: &[TypeDef] = &[")
for n, (full, atomic, fields) in enumerate(out_types):
    print("    // %d" % n)
    print('    TypeDef { name: "%s", atomic: %s, fields: &[' % (full, atomic))
    for fl in fields:
        print("    " + fl)
    print("    ] },")
print("];")
