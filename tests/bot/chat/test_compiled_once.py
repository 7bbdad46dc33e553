"""Message templates are compiled once (`bot.chat.render._CompiledOnce`, jinja's cache on
disk): not again by the next Renderer (each app has its own), not again by another
process, and anew when the template's text changed or its entry was damaged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jinja2
import pytest

from bot.chat import render
from bot.chat.render import Renderer, precompile


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the templates jinja compiles from source meanwhile."""
    compiled: list[str] = []
    original = jinja2.Environment.compile

    def counting(self: jinja2.Environment, source: object, name: str | None = None, *args: object) -> object:
        compiled.append(name or "")
        return original(self, source, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    return compiled


def _templates(tmp_path: Path, text: str) -> Path:
    (tmp_path / "zh").mkdir(parents=True, exist_ok=True)
    (tmp_path / "zh" / "hello.j2").write_text(text, encoding="utf-8")
    return tmp_path


def _renderer(directory: Path) -> Renderer:
    return Renderer(default_locale="zh", base_url="http://shop.example", shop_name="小店", directory=directory)


def test_a_second_renderer_renders_without_compiling(tmp_path: Path, compiles: list[str]) -> None:
    directory = _templates(tmp_path, "你好，{{ who }}！")
    assert _renderer(directory).text("hello", "zh", {"who": "张三"}) == "你好，张三！"
    assert compiles == ["zh/hello.j2"]
    assert _renderer(directory).text("hello", "zh", {"who": "李四"}) == "你好，李四！"
    assert compiles == ["zh/hello.j2"]  # the second app took the code compiled for the first


def test_an_edited_template_is_compiled_anew(tmp_path: Path, compiles: list[str]) -> None:
    directory = _templates(tmp_path, "旧的 {{ who }}")
    assert _renderer(directory).text("hello", "zh", {"who": "x"}) == "旧的 x"
    _templates(tmp_path, "新的 {{ who }}")
    assert _renderer(directory).text("hello", "zh", {"who": "x"}) == "新的 x"
    assert compiles == ["zh/hello.j2", "zh/hello.j2"]


def test_another_process_loads_what_one_compiled_and_a_damaged_entry_is_compiled_again(
    tmp_path: Path, compiles: list[str]
) -> None:
    directory = _templates(tmp_path, "进程 {{ n }}")
    assert precompile(directory) == 1  # as `storefront serve` does before its workers start
    assert compiles == ["zh/hello.j2"]
    probe = (
        "import jinja2, sys; from pathlib import Path; from bot.chat.render import Renderer\n"
        "seen = []; original = jinja2.Environment.compile\n"
        "jinja2.Environment.compile = lambda self, *a, **k: seen.append(1) or original(self, *a, **k)\n"
        "r = Renderer(default_locale='zh', base_url='', shop_name='', directory=Path(sys.argv[1]))\n"
        "print(r.text('hello', 'zh', {'n': 2}), len(seen))\n"
    )
    other = subprocess.run([sys.executable, "-c", probe, str(directory)], capture_output=True, text=True, check=True)
    assert other.stdout.split() == ["进程", "2", "0"]  # rendered, nothing compiled: read from disk
    disk = render._COMPILED
    assert isinstance(disk, jinja2.FileSystemBytecodeCache)
    key = disk.get_cache_key("zh/hello.j2", str(directory / "zh" / "hello.j2"))
    entry = Path(disk.directory) / (disk.pattern % key)
    # damaged on disk: another file's bytes, then jinja's header with a broken checksum after it
    for damage in (b"not jinja bytecode", jinja2.bccache.bc_magic + b"broken"):
        entry.write_bytes(damage)
        again = subprocess.run([sys.executable, "-c", probe, str(directory)], capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
        assert again.stdout.split() == ["进程", "2", "1"]  # compiled again, rendered all the same
