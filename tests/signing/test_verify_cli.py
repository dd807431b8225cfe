"""``edoc-gateway verify`` as a real process on a folder tree (issue 12): folders searched
recursively, files verified in the signing pool, results in file order, a summary line, progress
only on a terminal, every HTTP session closed, and the documented exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.demo.samples import tamper
from signing.testpki.pdfs import make_pdf
from signing.testpki.samples import sign_sample

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tree(test_pki, tmp_path_factory) -> Path:
    """a/valid.pdf, a/b/VALID2.PDF, a/b/tampered.pdf (invalid), a/junk.PDF (random bytes),
    a/b/c/recoded.pdf (a signed PDF read as latin-1 and written as UTF-8), a/notes.txt."""
    root = tmp_path_factory.mktemp("verify-tree") / "a"
    (root / "b" / "c").mkdir(parents=True)

    def signed(title: str) -> bytes:
        return asyncio.run(sign_sample(make_pdf(1, title), test_pki, "officer"))

    (root / "valid.pdf").write_bytes(signed("Cong van mot"))
    (root / "b" / "VALID2.PDF").write_bytes(signed("Cong van hai"))
    (root / "b" / "tampered.pdf").write_bytes(tamper(signed("Cong van ba"), "Cong van ba"))
    (root / "junk.PDF").write_bytes(bytes(range(256)) * 8)
    (root / "b" / "c" / "recoded.pdf").write_bytes(
        signed("Cong van bon").decode("latin-1").encode("utf-8"))
    (root / "notes.txt").write_text("not a PDF, not looked at")
    return root


EXPECTED = {"a/b/VALID2.PDF": "valid", "a/b/c/recoded.pdf": "error",
            "a/b/tampered.pdf": "invalid", "a/junk.PDF": "error", "a/valid.pdf": "valid"}
SUMMARY = "2 valid / 1 invalid / 0 indeterminate / 2 unreadable"


def _cli(*args: str, cwd: Path, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDOC_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "gateway", "verify", *args], cwd=cwd,
                          env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                          timeout=300, check=False)


def _trust(test_pki) -> list[str]:
    return ["--trust", str(test_pki.trust_bundle_path)]


def test_folder_tree_text_report_summary_and_exit_code(tree, test_pki):
    proc = _cli("a", *_trust(test_pki), "--offline", "--jobs", "2", cwd=tree.parent)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 2, proc.stderr  # unreadable files: 2, the others still checked
    assert [line.split(":", 1)[0] for line in lines[:-1]] == sorted(EXPECTED)
    assert lines[-1] == SUMMARY
    assert "a/junk.PDF: ERROR PDF_UNREADABLE" in proc.stdout
    assert "a/b/tampered.pdf: INVALID" in proc.stdout
    assert proc.stderr == ""  # no progress off a terminal, no warning, no unclosed session


def test_json_lines_parse_and_summary_goes_to_stderr(tree, test_pki):
    proc = _cli("a", *_trust(test_pki), "--offline", "--json", cwd=tree.parent)
    reports = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {r["file"]: r["verdict"] for r in reports} == EXPECTED
    assert [r["file"] for r in reports] == sorted(EXPECTED)
    assert {r["error"]["code"] for r in reports if r["verdict"] == "error"} == {"PDF_UNREADABLE"}
    assert proc.stderr.splitlines() == [SUMMARY]
    assert proc.returncode == 2


def test_online_verification_closes_its_http_sessions(tree, test_pki):
    """Online, the revocation fetchers open an aiohttp session per verification: every one is
    closed (no "Unclosed client session" from the CLI or its workers)."""
    proc = _cli(str(tree / "valid.pdf"), str(tree / "b"), *_trust(test_pki), cwd=tree.parent)
    assert "Unclosed" not in proc.stderr, proc.stderr
    assert proc.stdout.splitlines()[-1] == "2 valid / 1 invalid / 0 indeterminate / 1 unreadable"
    assert proc.returncode == 2


def test_exit_codes(tree, test_pki):
    trust = [*_trust(test_pki), "--offline"]
    assert _cli("a/valid.pdf", "a/b/VALID2.PDF", *trust, cwd=tree.parent).returncode == 0
    assert _cli("a/valid.pdf", "a/b/tampered.pdf", *trust, cwd=tree.parent).returncode == 1
    none = _cli("a/b/c/nothing-here", *trust, cwd=tree.parent)
    assert none.returncode == 2 and "ERROR IO_ERROR" in none.stdout
    (tree.parent / "empty").mkdir(exist_ok=True)
    empty = _cli("empty", *trust, cwd=tree.parent)
    assert empty.returncode == 2 and empty.stderr.startswith("edoc-gateway: no PDF file found")
    helped = _cli("--help", cwd=tree.parent)
    assert helped.returncode == 0 and "Exit codes:" in helped.stdout
    assert "2  some file is unreadable" in helped.stdout


def _on_a_terminal(*args: str, cwd: Path) -> tuple[str, str, int]:
    """Run the CLI with stderr on a pseudo-terminal: (stdout, what the terminal got, rc)."""
    master, slave = pty.openpty()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDOC_")}
        env["PYTHONPATH"] = str(REPO)
        proc = subprocess.Popen([sys.executable, "-m", "gateway", "verify", *args], cwd=cwd,
                                env=env, stdout=subprocess.PIPE, stderr=slave)
    finally:
        os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal's other end closed (EIO)
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    out = proc.stdout.read().decode()
    return out, seen.decode(errors="replace"), proc.wait(timeout=300)


def test_progress_is_shown_on_a_terminal_only_without_json(tree, test_pki):
    trust = [*_trust(test_pki), "--offline"]
    out, terminal, rc = _on_a_terminal("a", *trust, cwd=tree.parent)
    assert rc == 2
    assert "verifying 5/5" in terminal and "verifying 0/5" in terminal
    assert terminal.endswith("\r\x1b[K")  # the progress line is cleared at the end
    assert out.splitlines()[-1] == SUMMARY and "verifying" not in out
    out, terminal, rc = _on_a_terminal("a", *trust, "--json", cwd=tree.parent)
    assert "verifying" not in terminal and terminal.strip() == SUMMARY
    assert len([json.loads(line) for line in out.splitlines()]) == 5


def test_verifier_aclose_closes_the_session_its_fetchers_opened(tree, test_pki):
    """An online Verifier's revocation fetchers open an aiohttp session lazily; ``aclose()``
    (and ``async_verify_pdf``) close it — a caller's own ``policy.session`` stays open."""
    code = (
        "import asyncio, sys, aiohttp\n"
        "from signing.verify import VerificationPolicy, Verifier, async_verify_pdf\n"
        "pdf = open(sys.argv[1], 'rb').read()\n"
        "policy = VerificationPolicy(trust_paths=[sys.argv[2]])\n"
        "async def main():\n"
        "    await async_verify_pdf(pdf, policy)\n"
        "    verifier = Verifier(policy)\n"
        "    await verifier.averify(pdf)\n"
        "    await verifier.aclose()\n"
        "    async with aiohttp.ClientSession() as own:\n"
        "        mine = Verifier(VerificationPolicy(trust_paths=[sys.argv[2]], session=own))\n"
        "        await mine.averify(pdf)\n"
        "        await mine.aclose()\n"
        "        assert not own.closed\n"
        "asyncio.run(main())\n"
        "import gc; gc.collect()\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code, str(tree / "valid.pdf"),
                           str(test_pki.trust_bundle_path)], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Unclosed" not in proc.stderr, proc.stderr


def test_fifo_and_device_named_pdf_are_reported_not_read(tree, test_pki, tmp_path):
    """Only regular files are read (POSIX: opening a FIFO blocks until a writer comes, a device
    never ends): a FIFO named ``x.pdf`` in a folder and ``/dev/zero`` given by name are each
    reported unreadable at once (exit 2), and the other files are still verified."""
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "valid.pdf").write_bytes((tree / "valid.pdf").read_bytes())
    os.mkfifo(folder / "pipe.pdf")
    proc = _cli("odd", "/dev/zero", *_trust(test_pki), "--offline", cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines[0].startswith("odd/pipe.pdf: ERROR IO_ERROR: not a regular file"), lines
    assert lines[1].startswith("odd/valid.pdf: VALID"), lines
    assert lines[2].startswith("/dev/zero: ERROR IO_ERROR: not a regular file"), lines
    assert lines[3] == "1 valid / 0 invalid / 0 indeterminate / 2 unreadable"


def test_a_folder_that_cannot_be_listed_is_reported_not_skipped(tree, test_pki, tmp_path):
    """Every PDF of a folder is verified or reported: a subfolder that cannot be listed (here a
    path longer than PATH_MAX, ENAMETOOLONG; likewise EACCES) is one unreadable entry (exit 2),
    never silently left out of a run that then says every file is valid."""
    (tmp_path / "top").mkdir()
    (tmp_path / "top" / "valid.pdf").write_bytes((tree / "valid.pdf").read_bytes())
    fd = os.open(tmp_path / "top", os.O_RDONLY)
    try:
        for _ in range(20):  # 20 * 256 characters: past PATH_MAX (4096) as a path string
            os.mkdir("d" * 255, dir_fd=fd)
            fd, old = os.open("d" * 255, os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
        with open(os.open("deep.pdf", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as out:
            out.write((tree / "valid.pdf").read_bytes())
    finally:
        os.close(fd)
    proc = _cli("top", *_trust(test_pki), "--offline", cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "top/valid.pdf: VALID" in proc.stdout
    assert "ERROR IO_ERROR: cannot list folder" in proc.stdout, proc.stdout
    assert proc.stdout.splitlines()[-1] == "1 valid / 0 invalid / 0 indeterminate / 1 unreadable"


def test_ctrl_c_stops_quietly_and_leaves_no_worker(tree, test_pki, tmp_path):
    """Ctrl-C (SIGINT to the terminal's process group, the CLI and its workers alike) ends the
    run with status 130: the workers leave it to the CLI (no traceback of theirs on stderr)
    and none is left running."""
    import signal
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    data = (tree / "valid.pdf").read_bytes()
    for i in range(400):
        (folder / f"f{i:03d}.pdf").write_bytes(data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDOC_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "verify", "many", *_trust(test_pki), "--offline",
         "--jobs", "2"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stdout.readline()  # a result: the workers are running
    assert first.startswith(b"many/f000.pdf: VALID"), first
    workers = [int(p) for p in subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()]
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err.decode()
    deadline = time.monotonic() + 10
    while (left := [p for p in workers if os.path.exists(f"/proc/{p}")
                    and b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers and not left, (workers, left)
