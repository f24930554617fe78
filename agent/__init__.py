"""The pitwin agent: Raspberry Pi sensors as IoT Hub module twins."""
