#!/usr/bin/env python3
"""Regenerates table.rs: the protobuf wire layout of the built-in kinds.

It reads upstream's `generated.proto` files (k8s.io/api and k8s.io/apimachinery) for each
message's fields, numbers and types, and the Go API types beside them for what the proto
files do not say: each field's JSON name, whether it is inlined in JSON (`json:",inline"`),
and whether Go's JSON encoding drops it when it is zero (a non-pointer `omitempty` field).
Go types that are named slices (`type ExtraValue []string`) are wrapped in a message with
one `items` field on the wire and are a plain JSON array.

usage: schema_gen.py API_REPO_DIR APIMACHINERY_REPO_DIR > table.rs
"""

import os
import re
import sys

API, MACHINERY = sys.argv[1], sys.argv[2]

PACKAGE_RE = re.compile(r"^package ([\w.]+);")
MESSAGE_RE = re.compile(r"^message (\w+) \{")
FIELD_RE = re.compile(r"^\s+(optional|repeated|required)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)")
MAP_RE = re.compile(r"^\s+map<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)")
GO_STRUCT_RE = re.compile(r"^type (\w+) struct \{")
GO_SLICE_RE = re.compile(r"^type (\w+) \[\]")
GO_GROUP_RE = re.compile(r'^\s*(?:const\s+)?GroupName\s*=\s*"([^"]*)"')

SCALARS = {"string": "S", "bytes": "B", "bool": "Bool", "int32": "I32", "int64": "I64"}

# Messages whose JSON form is not an object of their fields.
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "Time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawJson",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
}

messages = {}  # full name -> list of (label, type, name, number, is_map, key)
packages = []  # (group, version, proto package)
go_fields = {}  # (proto package, struct) -> {number: (json, inline, omit_zero)}
go_slices = set()  # (proto package, type)


def parse_proto(path):
    pkg = None
    cur = None
    with open(path) as f:
        for ln in f:
            m = PACKAGE_RE.match(ln)
            if m:
                pkg = m.group(1)
                continue
            m = MESSAGE_RE.match(ln)
            if m:
                cur = pkg + "." + m.group(1)
                messages[cur] = []
                continue
            if ln.startswith("}"):
                cur = None
                continue
            if cur is None:
                continue
            m = MAP_RE.match(ln)
            if m:
                messages[cur].append(("map", resolve(pkg, m.group(2)), m.group(3), int(m.group(4))))
                continue
            m = FIELD_RE.match(ln)
            if m:
                messages[cur].append((m.group(1), resolve(pkg, m.group(2)), m.group(3), int(m.group(4))))
    return pkg


def resolve(pkg, ty):
    if ty in SCALARS:
        return ty
    if ty.startswith("."):
        return ty[1:]
    return pkg + "." + ty


def parse_go(pkg, directory):
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".go") or name.endswith("_test.go") or "generated" in name:
            continue
        with open(os.path.join(directory, name)) as f:
            lines = f.read().split("\n")
        struct = None
        for ln in lines:
            m = GO_SLICE_RE.match(ln)
            if m:
                go_slices.add((pkg, m.group(1)))
                continue
            m = GO_STRUCT_RE.match(ln)
            if m:
                struct = go_fields.setdefault((pkg, m.group(1)), {})
                continue
            if ln.startswith("}"):
                struct = None
                continue
            if struct is None or "`" not in ln:
                continue
            head, tags = ln.split("`", 1)
            pb = re.search(r'protobuf:"([^"]*)"', tags)
            if not pb:
                continue
            parts = pb.group(1).split(",")
            if len(parts) < 2 or not parts[1].isdigit():
                continue
            number = int(parts[1])
            words = head.split()
            gotype = words[-1] if words else ""
            js = re.search(r'json:"([^"]*)"', tags)
            jparts = js.group(1).split(",") if js else [""]
            jname, opts = jparts[0], jparts[1:]
            inline = "inline" in opts or (len(words) == 1 and jname == "")
            omit_zero = "omitempty" in opts and not gotype.startswith("*")
            struct[number] = (jname, inline, omit_zero)


def group_of(directory):
    for name in ("register.go", "doc.go"):
        p = os.path.join(directory, name)
        if os.path.exists(p):
            with open(p) as f:
                for ln in f:
                    m = GO_GROUP_RE.match(ln)
                    if m:
                        return m.group(1)
    return None


def walk(root, rel_filter):
    for d, _, files in sorted(os.walk(root)):
        if "generated.proto" in files and rel_filter(os.path.relpath(d, root)):
            yield d


for d in walk(API, lambda r: True):
    pkg = parse_proto(os.path.join(d, "generated.proto"))
    parse_go(pkg, d)
    group = group_of(d)
    if group is not None:
        packages.append((group, os.path.basename(d), pkg))

MACHINERY_DIRS = ("pkg/apis/meta/v1", "pkg/api/resource", "pkg/util/intstr", "pkg/runtime")
for d in walk(MACHINERY, lambda r: r in MACHINERY_DIRS):
    pkg = parse_proto(os.path.join(d, "generated.proto"))
    parse_go(pkg, d)
packages.append(("meta.k8s.io", "v1", "k8s.io.apimachinery.pkg.apis.meta.v1"))

names = sorted(messages)
index = {n: i for i, n in enumerate(names)}


def kind(ty):
    if ty in SCALARS:
        return SCALARS[ty]
    if ty not in index:
        sys.exit(f"unknown message type {ty}")
    return f"M({index[ty]})"


def special_of(name):
    if name in SPECIAL:
        return SPECIAL[name]
    pkg, _, short = name.rpartition(".")
    fields = messages[name]
    if (pkg, short) in go_slices and len(fields) == 1 and fields[0][2] == "items":
        return "Items"
    return "None"


out = []
out.append("//! Generated by schema_gen.py from upstream's generated.proto files and Go API types: do not edit by hand.")
out.append("")
out.append("use super::schema::Kind::{Bool, B, I32, I64, M, S};")
out.append("use super::schema::{Field, Message, Special, f, map, rep};")
out.append("")
out.append("pub(super) static PACKAGES: &[(&str, &str, &str)] = &[")
for g, v, p in sorted(packages):
    out.append(f'    ("{g}", "{v}", "{p}"),')
out.append("];")
out.append("")
out.append("pub(super) static MESSAGES: &[Message] = &[")
for n in names:
    pkg, _, short = n.rpartition(".")
    gofields = go_fields.get((pkg, short), {})
    out.append(f'    Message {{ name: "{n}", special: Special::{special_of(n)}, fields: &[')
    for label, ty, pname, number in sorted(messages[n], key=lambda x: x[3]):
        jname, inline, omit_zero = gofields.get(number, (pname, False, False))
        if not jname and not inline:
            jname = pname
        flags = []
        if inline:
            flags.append("INLINE")
        if omit_zero:
            flags.append("OMIT_ZERO")
        fl = " | ".join("Field::" + x for x in flags) or "0"
        k = kind(ty)
        ctor = {"map": "map", "repeated": "rep"}.get(label, "f")
        out.append(f'        {ctor}({number}, "{jname}", {k}, {fl}),')
    out.append("    ] },")
out.append("];")
print("\n".join(out))
