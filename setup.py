"""Two build steps pyproject.toml cannot declare: the relay's C fan-out loop (media/native/build.py,
through cffi's ``cffi_modules``; without a compiler the install goes on and the Python loop forwards)
and the web pages, which live at the top of the checkout but must travel inside the wheel."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

WEB_CLIENT = Path(__file__).resolve().parent / "web_client"


class BuildWithPages(build_py):
    """Copies ``web_client/`` into the built ``server`` package (``server/web_client``), where
    ``server.app`` looks first. An editable install serves them from the checkout instead."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for source in sorted(WEB_CLIENT.rglob("*")):
            if source.is_file():
                target = Path(self.build_lib) / "server" / "web_client" / source.relative_to(WEB_CLIENT)
                self.mkpath(str(target.parent))
                self.copy_file(str(source), str(target))


setup(cffi_modules=["media/native/build.py:ffi"], cmdclass={"build_py": BuildWithPages})
