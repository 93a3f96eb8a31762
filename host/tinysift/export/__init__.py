"""Export: the ``.tflite`` as a layer table, the int8 sets and golden vectors as C arrays."""
