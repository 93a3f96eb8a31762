"""int8 quantization (post-training and quantization-aware) checked with the TFLM runtime."""
