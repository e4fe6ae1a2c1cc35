"""Which Kubernetes API permissions the operator's code uses, read from operator/src.

The model, deliberately small and strict (anything it does not understand is an
error, so new code cannot slip past it):

1. Kinds. Every `Api<K>`, `Api::<K>`, `.api::<K>(` names a kind; `K` is resolved
   through the file's `use` statements (k8s_openapi module -> API group; the
   CacheBridge type -> the CRD's group) to (group, resource).
2. Functions. Each `fn` is scanned on its own (test modules and comments removed,
   string literals blanked). Inside it, names bound to an Api (a parameter `x: Api<K>`
   or `&Api<K>`, `let x: Api<K> = …`, `let x = Api::<K>::…` / `scope.api::<K>(…)`)
   are tracked, and every method called on them is mapped to verbs by API_METHODS
   (`patch` with `Patch::Apply` is patch *and* create: a server-side apply that
   creates the object is authorized as create too). A method not in the table is an
   error.
3. Watches. `Controller::new(API, …)`, `.owns(API, …)` and `watcher(API, …)` on a
   kind list and watch it (API: `Api::<K>…`, `x.api::<K>(…)` or a bound name).
4. Generic helpers. A function whose Api kind is one of its own type parameters
   (`fn ensure<K>(api: Api<K>, …)`) contributes its verbs to the kinds it is called
   with: `ensure(Api::<Secret>::namespaced(…), …)`, `ensure(api.clone(), …)` with a
   bound `api`, `owns::<StatefulSet>(…)`, or `caches::watch(scope.api::<Secret>(…), …)`.
5. Libraries. Entry points that call the API on the operator's behalf
   (LIBRARY_CALLS: kube's event Recorder, kube-lease-manager) carry their
   permissions; test_rbac.py checks those against the crates' sources.

The result is a set of Permission(group, resource, verb, function) records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# kube::Api methods -> (subresource, verbs). `patch` gains `create` when it is an apply.
API_METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "get": ("", ("get",)),
    "get_opt": ("", ("get",)),
    "get_metadata": ("", ("get",)),
    "get_metadata_opt": ("", ("get",)),
    "list": ("", ("list",)),
    "list_metadata": ("", ("list",)),
    "watch": ("", ("watch",)),
    "watch_metadata": ("", ("watch",)),
    "create": ("", ("create",)),
    "replace": ("", ("update",)),
    "patch": ("", ("patch",)),
    "patch_metadata": ("", ("patch",)),
    "delete": ("", ("delete",)),
    "delete_collection": ("", ("deletecollection",)),
    "entry": ("", ("get", "create", "update")),
    "get_status": ("status", ("get",)),
    "patch_status": ("status", ("patch",)),
    "replace_status": ("status", ("update",)),
    "get_scale": ("scale", ("get",)),
    "patch_scale": ("scale", ("patch",)),
    "replace_scale": ("scale", ("update",)),
}
# Methods of Api that make no request.
API_LOCAL_METHODS = {"resource_url", "namespace", "into_client", "clone"}

# k8s_openapi::api::<module>::<version> -> API group.
K8S_GROUPS = {
    "core": "", "apps": "apps", "batch": "batch", "networking": "networking.k8s.io",
    "policy": "policy", "rbac": "rbac.authorization.k8s.io", "coordination": "coordination.k8s.io",
    "events": "events.k8s.io", "autoscaling": "autoscaling", "discovery": "discovery.k8s.io",
    "storage": "storage.k8s.io", "scheduling": "scheduling.k8s.io", "admissionregistration": "admissionregistration.k8s.io",
    "apiextensions": "apiextensions.k8s.io",
}

# Entry points of libraries that call the API for the operator: (group, resource, verbs).
LIBRARY_CALLS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # kube::runtime::events::Recorder::publish: events.k8s.io/v1 create, or patch to bump a series.
    "Recorder::new": ("events.k8s.io", "events", ("create", "patch")),
    # kube_lease_manager: reads, creates and patches its Lease.
    "LeaseManagerBuilder::new": ("coordination.k8s.io", "leases", ("get", "create", "patch")),
}


@dataclass(frozen=True, order=True)
class Permission:
    group: str
    resource: str
    verb: str
    function: str  # file::fn where the use is (for messages and flag gating)


class ScanError(Exception):
    pass


def plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith("y") and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    return lower + "s"


def strip_code(text: str) -> str:
    """Removes comments and #[cfg(test)] modules, blanks string contents (keeping
    their length, so braces in strings cannot confuse the brace matching)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""')
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:i + 4])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    code = "".join(out)
    # Drop test modules: `#[cfg(test)] mod name { … }`.
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", code)
        if not m:
            break
        end = match_brace(code, m.end() - 1)
        code = code[:m.start()] + code[end + 1:]
    return code


def match_brace(code: str, open_at: int) -> int:
    pairs = {"{": "}", "(": ")", "[": "]"}
    opener = code[open_at]
    closer = pairs[opener]
    depth = 0
    for i in range(open_at, len(code)):
        if code[i] == opener:
            depth += 1
        elif code[i] == closer:
            depth -= 1
            if depth == 0:
                return i
    raise ScanError(f"unbalanced {opener} at {open_at}")


def resolve_uses(code: str, crd_group: str, crd_kind: str) -> dict[str, tuple[str, str]]:
    """Type name -> (group, kind) from the `use` statements of a file."""
    names: dict[str, tuple[str, str]] = {}
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        for path, alias in _expand_use(m.group(1).replace("\n", " ")):
            kind = path.split("::")[-1]
            group = _group_of(path, crd_kind)
            if group is not None:
                names[alias] = (group if group != "<crd>" else crd_group, kind)
    return names


def _expand_use(tree: str) -> list[tuple[str, str]]:
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        alias = tree.split("::")[-1]
        if "as" in tree:
            pass
        return [(tree, alias)]
    prefix, _, rest = tree.partition("{")
    inner = rest[:-1]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        parts.append(cur)
    out = []
    for part in parts:
        out.extend(_expand_use(prefix + part))
    return out


def _group_of(path: str, crd_kind: str) -> str | None:
    segs = path.split("::")
    if segs[0] == "k8s_openapi" and len(segs) >= 4 and segs[1] == "api":
        return K8S_GROUPS.get(segs[2])
    if segs[0] == "k8s_openapi" and "apiextensions" in segs:
        return "apiextensions.k8s.io"
    if segs[0] in ("cachebridge_api", "crate") and segs[-1] == crd_kind:
        return "<crd>"
    return None


@dataclass
class Function:
    file: str
    name: str
    generics: set[str]
    signature: str
    body: str

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


def functions(code: str, file: str) -> list[Function]:
    found = []
    for m in re.finditer(r"\bfn\s+(\w+)\s*(<[^{;]*?>)?\s*\(", code):
        name = m.group(1)
        generics = set()
        if m.group(2):
            depth, cur, items = 0, "", []
            for ch in m.group(2)[1:-1]:
                if ch == "," and depth == 0:
                    items.append(cur)
                    cur = ""
                    continue
                depth += ch in "<(["
                depth -= ch in ">)]"
                cur += ch
            items.append(cur)
            generics = {i.strip().split(":")[0].strip() for i in items if i.strip() and not i.strip().startswith("'")}
        params_end = match_brace(code, m.end() - 1)
        brace = code.find("{", params_end)
        semicolon = code.find(";", params_end)
        if brace < 0 or (0 <= semicolon < brace):
            continue  # a declaration without body (trait)
        end = match_brace(code, brace)
        found.append(Function(file, name, generics, code[m.start():brace], code[brace:end + 1]))
    return found


TYPE = r"([A-Za-z_][\w:]*)"


class Scanner:
    def __init__(self, src: Path, crd_group: str, crd_kind: str, crd_plural: str):
        self.src = src
        self.crd = (crd_group, crd_kind, crd_plural)
        self.functions: list[Function] = []
        self.kinds: dict[str, dict[str, tuple[str, str]]] = {}
        for path in sorted(src.rglob("*.rs")):
            rel = str(path.relative_to(src))
            code = strip_code(path.read_text())
            self.kinds[rel] = resolve_uses(code, crd_group, crd_kind)
            self.functions.extend(functions(code, rel))

    # -- kinds

    def resolve(self, file: str, name: str, fn: Function) -> tuple[str, str] | None:
        """(group, resource) of a type name, or None for a generic parameter."""
        short = name.split("::")[-1]
        if short in fn.generics or name in fn.generics:
            return None
        group_kind = self.kinds[file].get(short)
        if group_kind is None and "::" in name:
            group = _group_of(name, self.crd[1])
            if group is not None:
                group_kind = (self.crd[0] if group == "<crd>" else group, short)
        if group_kind is None:
            raise ScanError(f"{file}::{fn.name}: cannot resolve the kind {name!r} (no `use` of it)")
        group, kind = group_kind
        resource = self.crd[2] if (group, kind) == (self.crd[0], self.crd[1]) else plural(kind)
        return group, resource

    # -- per function

    def _bindings(self, fn: Function) -> dict[str, str]:
        text = fn.signature + fn.body
        bound: dict[str, str] = {}
        for m in re.finditer(rf"\b(\w+)\s*:\s*&?(?:mut\s+)?Api<\s*{TYPE}\s*>", text):
            bound[m.group(1)] = m.group(2)
        for m in re.finditer(rf"\blet\s+(?:mut\s+)?(\w+)\s*=\s*(?:Api::<\s*{TYPE}\s*>::|[\w.]+\.api::<\s*{TYPE}\s*>\()", text):
            bound[m.group(1)] = m.group(2) or m.group(3)
        return bound

    def direct(self, fn: Function) -> tuple[list[tuple[str, str, tuple[str, ...]]], list[str]]:
        """(type name, subresource, verbs) used in `fn` itself, and error messages."""
        uses, errors = [], []
        text = fn.body
        bound = self._bindings(fn)
        for var, type_name in bound.items():
            for m in re.finditer(rf"(?<![\w.]){re.escape(var)}\s*\.\s*(\w+)\s*(?:::<[^>]*>)?\(", text):
                method = m.group(1)
                if method in API_LOCAL_METHODS:
                    continue
                if method not in API_METHODS:
                    errors.append(f"{fn.id}: unknown Api method `{var}.{method}(`; add it to API_METHODS")
                    continue
                sub, verbs = API_METHODS[method]
                if method == "patch":
                    args_end = match_brace(text, m.end() - 1)
                    if "Patch::Apply" in text[m.end():args_end]:
                        verbs = verbs + ("create",)
                uses.append((type_name, sub, verbs))
        # Api expressions used in place: Api::<K>::ctor(…).method(…)
        for m in re.finditer(rf"Api::<\s*{TYPE}\s*>::\w+\s*\(", text):
            end = match_brace(text, m.end() - 1)
            chained = re.match(r"\s*\.\s*(\w+)\s*\(", text[end + 1:])
            if chained:
                method = chained.group(1)
                if method not in API_METHODS:
                    errors.append(f"{fn.id}: unknown Api method `.{method}(` on Api::<{m.group(1)}>")
                else:
                    uses.append((m.group(1), *API_METHODS[method]))
        # Watches.
        for m in re.finditer(rf"(?:Controller::new|\.owns)\s*\(\s*(?:[\w.]+\.api::<\s*{TYPE}\s*>|Api::<\s*{TYPE}\s*>|(\w+)\s*[,)])", text):
            type_name = m.group(1) or m.group(2) or bound.get(m.group(3) or "")
            if type_name is None:
                errors.append(f"{fn.id}: a watch on an Api whose kind is not visible: {m.group(0)!r}")
                continue
            uses.append((type_name, "", ("list", "watch")))
        # `caches::watch(scope.api::<Slim<K>>(…), …)`: a watch of K (the generic
        # `watcher(` inside `caches::watch` is attributed here, at its callers).
        for m in re.finditer(rf"caches::watch\s*\(\s*[\w.]+\.api::<\s*Slim<\s*{TYPE}\s*>\s*>", text):
            uses.append((m.group(1), "", ("list", "watch")))
        generic_slim = re.search(r"Api<\s*Slim<\s*(\w+)\s*>\s*>", fn.signature)
        for m in re.finditer(r"\b(?:watcher|metadata_watcher|reflector)\s*\(", text):
            api = re.match(rf"\s*(?:[\w.]+\.api::<\s*{TYPE}\s*>\(|(\w+)\s*[,)])", text[m.end():])
            type_name = api and (api.group(1) or bound.get(api.group(2) or ""))
            if not type_name and generic_slim and generic_slim.group(1) in fn.generics:
                continue
            if m.group(0).startswith("reflector") or not type_name:
                errors.append(f"{fn.id}: `{m.group(0)}` is a watch the scanner does not attribute yet")
                continue
            uses.append((type_name, "", ("list", "watch")))
        if re.search(r"\bDynamicObject\b|\.request\s*::<|\bclient\.request\(", text):
            errors.append(f"{fn.id}: untyped API access (DynamicObject or raw request) cannot be attributed")
        # Api constructors without a visible kind must be in a typed let or a generic fn returning Api<K>.
        for m in re.finditer(r"\bApi::(all|namespaced|default_namespaced)\s*\(", text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            statement = text[text.rfind(";", 0, m.start()) + 1: m.start()]
            typed_let = re.search(r"let\s+(?:mut\s+)?\w+\s*:\s*Api<", statement)
            returns_api = re.search(r"->\s*Api<\s*(\w+)\s*>", fn.signature)
            if not typed_let and not (returns_api and returns_api.group(1) in fn.generics):
                errors.append(f"{fn.id}: `Api::{m.group(1)}` at {text[line_start:m.end()].strip()!r} has no visible kind")
        return uses, errors

    def helper_calls(self, fn: Function) -> list[tuple[str, str]]:
        """(helper name, type name) of calls that hand a kind to another function."""
        text = fn.body
        calls = []
        for m in re.finditer(rf"(?<![\w.:])(\w+)\s*\(\s*Api::<\s*{TYPE}\s*>", text):
            calls.append((m.group(1), m.group(2)))
        # helper(scope.api::<K>(…), …), also as module::helper(…).
        for m in re.finditer(rf"(?<![\w.])(?:\w+::)?(\w+)\s*\(\s*[\w.]+\.api::<\s*{TYPE}\s*>\s*\(", text):
            calls.append((m.group(1), m.group(2)))
        for m in re.finditer(rf"(?<![\w.])(\w+)::<\s*{TYPE}\s*>\s*\(", text):
            if m.group(1) != "Api":
                calls.append((m.group(1), m.group(2)))
        # A bound Api handed on: helper(api, …), helper(api.clone(), …), helper(&api, …).
        for var, type_name in self._bindings(fn).items():
            pattern = rf"(?<![\w.:])(\w+)\s*\(\s*&?{re.escape(var)}(?:\.clone\(\))?\s*[,)]"
            for m in re.finditer(pattern, text):
                calls.append((m.group(1), type_name))
        return calls

    def scan(self) -> set[Permission]:
        errors: list[str] = []
        by_name: dict[str, list[Function]] = {}
        for fn in self.functions:
            by_name.setdefault(fn.name, []).append(fn)
        direct = {}
        for fn in self.functions:
            uses, errs = self.direct(fn)
            direct[fn.id] = uses
            errors += errs
        # Summaries of generic helpers: verbs applied to their own type parameter.
        summary: dict[str, set[tuple[str, str]]] = {}
        changed = True
        while changed:
            changed = False
            for fn in self.functions:
                if not fn.generics:
                    continue
                verbs = {(sub, v) for t, sub, vs in direct[fn.id] if t.split("::")[-1] in fn.generics for v in vs}
                for helper, t in self.helper_calls(fn):
                    if t.split("::")[-1] in fn.generics:
                        for h in by_name.get(helper, []):
                            verbs |= summary.get(h.id, set())
                if verbs != summary.get(fn.id, set()):
                    summary[fn.id] = verbs
                    changed = True
        permissions: set[Permission] = set()
        for fn in self.functions:
            try:
                for type_name, sub, verbs in direct[fn.id]:
                    resolved = self.resolve(fn.file, type_name, fn)
                    if resolved is None:
                        continue  # the helper's callers get these
                    group, resource = resolved
                    for v in verbs:
                        permissions.add(Permission(group, resource + (f"/{sub}" if sub else ""), v, fn.id))
                for helper, type_name in self.helper_calls(fn):
                    helpers = [h for h in by_name.get(helper, []) if summary.get(h.id)]
                    if not helpers:
                        # Not an API helper of ours (serde_json::from_str::<T>, a concrete
                        # function whose own Api uses are counted where they are).
                        continue
                    resolved = self.resolve(fn.file, type_name, fn)
                    if resolved is None:
                        continue
                    group, resource = resolved
                    for h in helpers:
                        for sub, v in summary.get(h.id, set()):
                            permissions.add(Permission(group, resource + (f"/{sub}" if sub else ""), v, fn.id))
            except ScanError as e:
                errors.append(str(e))
            for entry, (group, resource, verbs) in LIBRARY_CALLS.items():
                if re.search(rf"\b{re.escape(entry)}\s*\(", fn.body):
                    for v in verbs:
                        permissions.add(Permission(group, resource, v, fn.id))
        if errors:
            raise ScanError("\n".join(errors))
        return permissions


def scan(src: Path, crd_group: str, crd_kind: str, crd_plural: str) -> set[Permission]:
    return Scanner(src, crd_group, crd_kind, crd_plural).scan()
