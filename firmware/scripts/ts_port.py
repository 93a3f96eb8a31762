"""PlatformIO extra script: the framework ports of ts_platform.h (boards/ports/) for the real
boards built with stock PlatformIO (internet), selected per env:

    [env:nano33ble]
    custom_ts_port = arduino        ; or espidf

It compiles the shared runtime (boards/runtime: the formatter, ts_platform.h, weak defaults),
boards/ports/common and boards/ports/<port> with the program, and defines TS_FRAMEWORK_MAIN
(the framework owns main(); the port calls the app's ts_app_main()) and TS_BOARD_NAME (the
env's name, for @boot). Without custom_ts_port it does nothing: the local platforms
(boards/platform-*) bring their runtime themselves.

Not run on this project's machines (no internet for the stock platforms).
"""

import os

Import("env")  # noqa: F821  (SCons provides it)

PORT = env.GetProjectOption("custom_ts_port", "")  # noqa: F821
if PORT:
    ROOT = os.path.normpath(os.path.join(env.subst("$PROJECT_DIR"), os.pardir))  # noqa: F821
    PORTS = os.path.join(ROOT, "boards", "ports")
    if not os.path.isdir(os.path.join(PORTS, PORT)):
        raise SystemExit(f"custom_ts_port = {PORT}: no {os.path.join(PORTS, PORT)}")
    env.Append(  # noqa: F821
        CPPPATH=[os.path.join(ROOT, "boards", "runtime", "include")],
        CPPDEFINES=[
            "TS_FRAMEWORK_MAIN",
            ("TS_BOARD_NAME", env.StringifyMacro(env["PIOENV"])),  # noqa: F821
        ],
    )
    for sub, src in (
        ("ts_runtime", os.path.join(ROOT, "boards", "runtime", "src")),
        ("ts_port_common", os.path.join(PORTS, "common")),
        ("ts_port_" + PORT, os.path.join(PORTS, PORT)),
    ):
        env.BuildSources(os.path.join("$BUILD_DIR", sub), src)  # noqa: F821
