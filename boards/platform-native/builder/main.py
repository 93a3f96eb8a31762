# tinysift: SCons builder of the local native platform (the host's gcc/cc).
#
# Links ../runtime (portable formatter, ts_platform.h) and ./runtime (stdin/stdout serial,
# clock_gettime counter) into every program, so firmware code builds unchanged on the host.
# `pio run -t exec` (or upload) runs the program; `pio test` runs it as the test program.

import os

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment  # pylint: disable=import-error

env = DefaultEnvironment()
platform = env.PioPlatform()

PLATFORM_DIR = platform.get_dir()
COMMON_DIR = os.path.normpath(os.path.join(PLATFORM_DIR, os.pardir, "runtime"))
if not os.path.isdir(os.path.join(COMMON_DIR, "include")):
    raise SystemExit(
        f"tinysift platform-native: the shared runtime {COMMON_DIR} is missing; the platform "
        "must stay a sibling of boards/runtime (reference it with platform = symlink://...)"
    )

# The host compiler: $CC / $CXX from the environment if set (e.g. CC=clang), else cc / c++.
for var, default in (("CC", "cc"), ("CXX", "c++")):
    env.Replace(**{var: os.environ.get(var, default)})

env.Append(
    CCFLAGS=["-O2", "-g", "-Wall"],
    CPPDEFINES=["TS_TARGET_NATIVE"],
    CPPPATH=[os.path.join(COMMON_DIR, "include")],
    LIBS=["m"],
)

env.BuildSources(os.path.join("$BUILD_DIR", "ts_runtime"), os.path.join(COMMON_DIR, "src"))
env.BuildSources(
    os.path.join("$BUILD_DIR", "ts_runtime_native"), os.path.join(PLATFORM_DIR, "runtime")
)

target_bin = env.BuildProgram()

exec_action = env.VerboseAction("$SOURCE $PROGRAM_ARGS", "Executing $SOURCE")
AlwaysBuild(env.Alias("exec", target_bin, exec_action))
AlwaysBuild(env.Alias("upload", target_bin, exec_action))

Default([target_bin])
