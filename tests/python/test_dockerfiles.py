"""The images cannot be built here (no Docker engine on the build machine, nor in CI), so
these tests hold the Dockerfiles to their invariants instead: multi-stage, a locked
release build of the right package, a shell-less distroless runtime of the same Debian
release, a numeric non-root USER that matches the uid the pods run as, and an exec-form
ENTRYPOINT naming the binary Cargo builds."""

from __future__ import annotations

import re
import tomllib

import pytest

import repo

PACKAGES = ("cachebridge-operator", "cachebridge-dataplane")


def dockerfiles():
    """Every Dockerfile in the repository (docker/*.Dockerfile, any */Dockerfile)."""
    found = sorted(repo.ROOT.glob("docker/*.Dockerfile")) + sorted(repo.ROOT.glob("*/Dockerfile"))
    return [str(p.relative_to(repo.ROOT)) for p in found]


def package_of(text: str) -> str:
    built = re.findall(r"cargo build --release --locked -p ([\w-]+)", text)
    assert len(built) == 1, f"expected one `cargo build --release --locked -p PACKAGE`, found {built}"
    return built[0]


SHELL_LESS_RUNTIMES = re.compile(r"^gcr\.io/distroless/(cc|static|base)(-debian\d+)?:(nonroot|latest)$")


def parse(text: str) -> list[dict]:
    """Stages of a Dockerfile: [{from, name, instructions: [(KEYWORD, args)]}]."""
    text = re.sub(r"\\\n", " ", text)
    args = {}
    stages: list[dict] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest.split()[0])
            name = rest.split()[2] if re.search(r"\sAS\s", rest, re.I) else None
            stages.append({"from": image, "name": name, "instructions": []})
        else:
            stages[-1]["instructions"].append((keyword, rest.strip()))
    return stages, args


def bin_name(package: str) -> str:
    manifest = tomllib.loads((repo.ROOT / package.removeprefix("cachebridge-") / "Cargo.toml").read_text())
    assert manifest["package"]["name"] == package
    [binary] = manifest["bin"]
    return binary["name"]


def test_there_is_an_image_for_each_binary():
    packages = [package_of((repo.ROOT / d).read_text()) for d in dockerfiles()]
    assert set(packages) == set(PACKAGES), dockerfiles()
    for name in ("docker/operator.Dockerfile", "docker/dataplane.Dockerfile"):
        assert name in dockerfiles()


@pytest.mark.parametrize("dockerfile", dockerfiles())
def test_dockerfile_invariants(dockerfile):
    text = (repo.ROOT / dockerfile).read_text()
    package = package_of(text)
    binary = bin_name(package)
    stages, _ = parse(text)
    assert len(stages) >= 2, "multi-stage: build and runtime"
    builder, runtime = stages[0], stages[-1]

    # Build: a pinned Rust toolchain new enough for the workspace, a locked release build.
    workspace = tomllib.loads((repo.ROOT / "Cargo.toml").read_text())["workspace"]["package"]
    msrv = tuple(int(p) for p in workspace["rust-version"].split("."))
    tag = re.fullmatch(r"rust:([\d.]+)-bookworm", builder["from"])
    assert tag, f"builder {builder['from']}: want rust:<pinned version>-bookworm"
    rust = tuple(int(p) for p in tag.group(1).split("."))
    assert rust >= msrv[:len(rust)], f"Rust {tag.group(1)} < rust-version {workspace['rust-version']}"
    runs = " ".join(a for k, a in builder["instructions"] if k == "RUN")
    assert f"cargo build --release --locked -p {package}" in runs

    # Runtime: distroless (no shell, so no RUN can even work), same Debian as the builder.
    assert SHELL_LESS_RUNTIMES.match(runtime["from"]), runtime["from"]
    assert runtime["from"].endswith("debian12:nonroot"), "bookworm-built binaries need a Debian 12 runtime"
    keywords = [k for k, _ in runtime["instructions"]]
    assert "RUN" not in keywords and "SHELL" not in keywords
    [copy] = [a for k, a in runtime["instructions"] if k == "COPY"]
    source = re.fullmatch(rf"--from={builder['name']} (\S+/{re.escape(binary)}) /usr/local/bin/{re.escape(binary)}", copy)
    assert source, copy
    assert "target/release/" + binary in runs or source.group(1).endswith("target/release/" + binary)

    # Non-root, numerically (runAsNonRoot can only verify a numeric uid).
    [user] = [a for k, a in runtime["instructions"] if k == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, user

    # Exec-form entrypoint (no shell to interpret a string form).
    [entrypoint] = [a for k, a in runtime["instructions"] if k == "ENTRYPOINT"]
    assert entrypoint == f'["/usr/local/bin/{binary}"]'
    for k, a in runtime["instructions"]:
        if k == "CMD":
            assert a.startswith("["), "CMD must be exec form"


def _user(dockerfile: str) -> int:
    stages, _ = parse((repo.ROOT / dockerfile).read_text())
    [user] = [a for k, a in stages[-1]["instructions"] if k == "USER"]
    return int(user.split(":")[0])


def test_images_run_as_the_uid_the_pods_declare(default_render):
    """The chart runs the operator as the operator image's user; the operator runs the
    dataplane as the dataplane image's user (DATAPLANE_UID in desired/dataplane.rs)."""
    pod = repo.one(default_render, "Deployment")["spec"]["template"]["spec"]
    for dockerfile in dockerfiles():
        if package_of((repo.ROOT / dockerfile).read_text()) == "cachebridge-operator":
            assert pod["securityContext"]["runAsUser"] == _user(dockerfile), dockerfile
    source = (repo.OPERATOR_SRC / "desired" / "dataplane.rs").read_text()
    uid = re.search(r"pub const DATAPLANE_UID: i64 = (\d+);", source)
    assert uid and int(uid.group(1)) == _user("docker/dataplane.Dockerfile")


def test_entrypoint_args_are_what_the_pods_pass(default_render):
    """The chart passes `run …` and the operator passes `writer|reader --bridge …` as
    args, after the image's ENTRYPOINT: so the ENTRYPOINT must be the bare binary."""
    args = repo.operator_container(default_render)["args"]
    assert args[0] == "run"
    assert "command" not in repo.operator_container(default_render)


def test_dockerignore_keeps_the_context_small_but_complete():
    ignored = {l.strip() for l in (repo.ROOT / ".dockerignore").read_text().splitlines()
               if l.strip() and not l.startswith("#")}
    assert {"target", ".git"} <= ignored
    # What a workspace build needs must stay in the context.
    for needed in ("Cargo.toml", "Cargo.lock", "api", "operator", "dataplane"):
        assert needed not in ignored and (repo.ROOT / needed).exists()
    members = tomllib.loads((repo.ROOT / "Cargo.toml").read_text())["workspace"]["members"]
    assert not set(members) & ignored


def test_parser_notices_a_shell_runtime():
    stages, _ = parse("ARG V=1\nFROM rust:${V} AS b\nRUN cargo build\nFROM debian:12\nRUN echo hi\n")
    assert stages[0]["from"] == "rust:1" and stages[0]["name"] == "b"
    assert not SHELL_LESS_RUNTIMES.match(stages[-1]["from"])
    assert ("RUN", "echo hi") in stages[-1]["instructions"]
