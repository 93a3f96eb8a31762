# tinysift: local PlatformIO dev-platform for the STM32 boards (offline).
from platformio.public import PlatformBase


class Stm32tinysiftPlatform(PlatformBase):
    def is_embedded(self):
        # No uploader package: "upload" runs the system's OpenOCD (a board) or qemu-system-arm
        # (the emulated board). Embedded, so PlatformIO checks program size.
        return True
