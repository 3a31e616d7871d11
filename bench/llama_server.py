"""llama.cpp's own ``llama-server``, found or built, and run side by side with the studio.

The binary is looked for in ``$LLAMA_SERVER``, on PATH, then in the user cache folder
(``<cache>/bin/llama-server``). When it is in none of them, ``python -m bench.llama_server
--build`` builds it once from the llama.cpp that llama-cpp-python vendors: pip downloads the
sdist of the installed llama-cpp-python version (from pip's cache, or the package registry),
CMake configures its ``vendor/llama.cpp`` with the server on, builds that one target, and the
``bin/`` folder (the binary and its shared libraries) is copied into the cache. Nothing else is
installed. ~20 minutes on 2 cores, once.

``serve_rate`` starts the server on 127.0.0.1 with ``-np N`` on the studio's model, prompts,
max_tokens and threads, sends every prompt at once as its own chat request (greedy), and
returns the completion tokens and the wall time from the first request to the last answer.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path


def cache_dir() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("synth-studio", appauthor=False)


def places() -> list[str]:
    cache = cache_dir()
    return [os.environ.get("LLAMA_SERVER") or "", shutil.which("llama-server") or "",
            str(cache / "llama-server"), str(cache / "bin" / "llama-server")]


def find_binary() -> str | None:
    """The first executable llama-server of ``places()``, or None."""
    return next((p for p in places() if p and os.access(p, os.X_OK) and Path(p).is_file()), None)


def where_looked() -> str:
    cache = cache_dir()
    return f"$LLAMA_SERVER, PATH, {cache}/llama-server or {cache}/bin/llama-server"


def build(log=print) -> str:
    """Build llama-server from the sdist of the installed llama-cpp-python; returns its path.
    Raises RuntimeError with one line saying what failed (the full log stays in the cache)."""
    from importlib.metadata import version

    if shutil.which("cmake") is None:
        raise RuntimeError("cmake is not on PATH: llama-server cannot be built here")
    ver = version("llama-cpp-python")
    dest = cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    build_log = dest / f"llama-server-build-{ver}.log"
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp, build_log.open("w") as out:
        work = Path(tmp)

        def step(what: str, cmd: list[str]) -> None:
            log(f"  {what}...")
            out.write(f"$ {' '.join(cmd)}\n")
            out.flush()
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                raise RuntimeError(f"{what} failed (exit {done.returncode}); see {build_log}")

        step(f"getting the llama-cpp-python {ver} source (pip's cache or the registry)",
             [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
              "-d", str(work), f"llama-cpp-python=={ver}"])
        sdists = sorted(work.glob("llama_cpp_python-*.tar.gz"))
        if not sdists:
            raise RuntimeError(f"pip gave no llama-cpp-python {ver} sdist; see {build_log}")
        with tarfile.open(sdists[0]) as tar:
            tar.extractall(work, filter="data")
        src = next(work.glob("llama_cpp_python-*/vendor/llama.cpp"))
        jobs = str(os.cpu_count() or 2)
        step("configuring llama.cpp's server", [
            "cmake", "-S", str(src), "-B", str(work / "build"), "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
            "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DGGML_NATIVE=ON", "-DCMAKE_BUILD_RPATH=$ORIGIN"])
        step(f"building llama-server ({jobs} jobs; ~20 minutes on 2 cores)",
             ["cmake", "--build", str(work / "build"), "--target", "llama-server", "-j", jobs])
        (dest / "bin").mkdir(exist_ok=True)
        for f in (work / "build" / "bin").iterdir():
            if f.is_file():
                shutil.copy2(f, dest / "bin" / f.name)
            elif f.is_symlink():
                link = dest / "bin" / f.name
                link.unlink(missing_ok=True)
                link.symlink_to(os.readlink(f))
    binary = dest / "bin" / "llama-server"
    if not binary.is_file():
        raise RuntimeError(f"the build made no llama-server; see {build_log}")
    return str(binary)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen) -> None:
    """Ask a server to stop, and kill it if it has not after 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def serving(cmd: list[str], ready_url: str, *, name: str, env: dict[str, str] | None = None,
            timeout_s: float = 120.0) -> Iterator[subprocess.Popen]:
    """A server process for the block's duration: started, waited for until ``ready_url``
    answers, stopped at the end (unless the block stopped it). Its output goes to a temporary
    file, not a pipe (a verbose log would fill a pipe and block the server); when it exits
    at start, the error ends with that log's tail."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} exited at start (exit {proc.returncode}): {tail}")
                try:
                    urllib.request.urlopen(ready_url, timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{name} did not start within {timeout_s:g} s") from None
                    time.sleep(0.2)
            yield proc
        finally:
            if proc.poll() is None:
                stop(proc)


@contextmanager
def running(binary: str, model: str, *, parallel: int, n_ctx: int, threads: int) -> Iterator[str]:
    """A llama-server on 127.0.0.1 for the block's duration; yields its base URL."""
    port = free_port()
    env = dict(os.environ)
    # the binary's shared libraries sit beside it (a copy out of its build folder)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(Path(binary).parent), env.get("LD_LIBRARY_PATH")]))
    url = f"http://127.0.0.1:{port}"
    with serving([binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-np", str(parallel),
                  "-c", str(n_ctx * parallel), "-t", str(threads), "-tb", str(threads)],
                 f"{url}/health", name="llama-server", env=env):
        yield url


def _chat(url: str, text: str, max_tokens: int) -> int:
    body = json.dumps({"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
                       "temperature": 0, "seed": 1}).encode()
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return int(json.loads(r.read())["usage"]["completion_tokens"])


def serve_rate(binary: str, model: str, texts: list[str], *, parallel: int, max_tokens: int, n_ctx: int,
               threads: int) -> tuple[int, float]:
    """(completion tokens, seconds) for every text sent at once to a fresh llama-server -np ``parallel``.
    One short request first, so loading the model is not counted (as it is not for the studio)."""
    with running(binary, model, parallel=parallel, n_ctx=n_ctx, threads=threads) as url:
        _chat(url, "Hello", 4)
        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            t0 = time.perf_counter()
            n = sum(pool.map(lambda t: _chat(url, t, max_tokens), texts))
            return n, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.llama_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--build", action="store_true", help="build it into the user cache when none is found")
    p.add_argument("--force", action="store_true", help="build even when one is found")
    args = p.parse_args()
    found = find_binary()
    if found and not args.force:
        print(f"llama-server: {found}")
        return 0
    if not (args.build or args.force):
        print(f"no llama-server (looked in {where_looked()}); `python -m bench.llama_server --build` builds one")
        return 1
    print(f"building llama-server into {cache_dir()}/bin")
    try:
        t0 = time.perf_counter()
        path = build()
    except RuntimeError as exc:
        print(f"llama-server could not be built: {exc}")
        return 2
    print(f"llama-server: {path} (built in {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
