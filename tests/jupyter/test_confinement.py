"""One confinement rule for both hosts: a folder's symlinks that lead out of it are never served.

The Jupyter extension (``kernelstate/apps/<path>``, its index) and ``kernelstate serve DIR`` (which the
jupyter-server-proxy launcher runs) decide which files of a folder are apps with the same function,
:func:`kernelstate.paths.confined_path`; these tests hold them to the same answers on one folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernelstate.errors import KernelstateError
from kernelstate.jupyter.apps import AppPathError, list_apps, resolve_app_path
from kernelstate.loading import discover
from kernelstate.paths import PathOutsideRootError, confined_path, is_within

APP = '"""{title}"""\nimport kernelstate as ks\nks.pane.Str("{text}").servable()\n'
OUTSIDE_TEXT = "FROM-OUTSIDE-THE-FOLDER"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """``apps/`` with a real app, a link to it, a link out, a subfolder and a linked folder out."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text(APP.format(title="Evil", text=OUTSIDE_TEXT))
    apps = tmp_path / "apps"
    (apps / "sub").mkdir(parents=True)
    (apps / "counter.py").write_text(APP.format(title="Counter", text="inside"))
    (apps / "sub" / "inner.py").write_text(APP.format(title="Inner", text="inside"))
    (apps / "alias.py").symlink_to(apps / "counter.py")
    (apps / "leak.py").symlink_to(outside / "evil.py")
    (apps / "linkdir").symlink_to(outside)
    return apps


def extension_serves(root: Path, api_path: str) -> bool:
    try:
        resolve_app_path(str(root), api_path)
    except AppPathError as exc:
        assert exc.status in (403, 404), exc.status
        return False
    return True


def test_both_hosts_serve_the_same_files_of_a_folder(folder: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A link inside the folder is an app under its own name in both hosts; a link out is one in neither,
    and `kernelstate serve` says which file it skipped and why."""
    launcher = sorted(app.route for app in discover([folder]))
    extension = sorted("/" + name.removesuffix(".py") for name in ("alias.py", "counter.py", "leak.py")
                       if extension_serves(folder, name))
    assert launcher == extension == ["/alias", "/counter"]
    assert "not serving" in caplog.text and "leak.py" in caplog.text and str(folder) in caplog.text
    assert not extension_serves(folder, "linkdir/evil.py")
    # The extension's index agrees: nothing reached through a link out.
    assert sorted(a.api_path for a in list_apps(str(folder))) == ["alias.py", "counter.py", "sub/inner.py"]


def test_an_explicitly_named_file_is_still_served(folder: Path) -> None:
    """Only a folder's contents are confined: `kernelstate serve link.py` names its file on purpose."""
    [app] = discover([folder / "leak.py"])
    assert app.route == "/leak" and app.source_path == (folder.parent / "outside" / "evil.py")


def test_a_server_rooted_at_the_filesystem_root_serves_its_apps(folder: Path) -> None:
    """Root "/" (a container's Jupyter, say) is no special case: its apps are inside it."""
    relative = str(folder / "counter.py").lstrip("/")
    assert resolve_app_path("/", relative) == folder / "counter.py"
    assert is_within("/", folder / "leak.py") and is_within(folder, folder)


def test_confined_path_says_what_left_the_folder(folder: Path) -> None:
    """Links out, `..` and absolute segments resolve outside: the error names the path, its target and the folder."""
    assert confined_path(folder, "alias.py") == folder / "counter.py"
    assert confined_path(str(folder), "sub", "inner.py") == folder / "sub" / "inner.py"
    for parts in (("leak.py",), ("linkdir", "evil.py"), ("..", "outside", "evil.py"), (str(folder.parent),)):
        with pytest.raises(PathOutsideRootError) as caught:
            confined_path(folder, *parts)
        message = str(caught.value)
        assert caught.value.root == str(folder) and str(folder) in message and "outside" in message
        assert isinstance(caught.value, KernelstateError) and isinstance(caught.value, ValueError)
    assert not is_within(folder, folder / "leak.py") and not is_within(folder, folder.parent)
    # A sibling whose name starts like the folder's is not inside it.
    sibling = Path(str(folder) + "-other")
    sibling.mkdir()
    assert not is_within(folder, sibling) and os.path.realpath(sibling).startswith(os.path.realpath(folder))
