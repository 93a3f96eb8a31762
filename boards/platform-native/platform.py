# tinysift: local stand-in for PlatformIO's "native" platform (host gcc, offline).
from platformio.public import PlatformBase


class NativePlatform(PlatformBase):
    pass
