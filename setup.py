from setuptools import setup

setup(cffi_modules=["kit/engines/build.py:ffibuilder"])
