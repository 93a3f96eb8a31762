# tinysift: local PlatformIO dev-platform for the QEMU mps2 boards (offline).
from platformio.public import PlatformBase


class QemuPlatform(PlatformBase):
    def is_embedded(self):
        # No uploader package: "upload" runs the system's qemu-system-arm. Still an embedded
        # platform, so PlatformIO checks program size and treats `pio test` as on-target.
        return True
