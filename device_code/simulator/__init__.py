"""A laptop stand-in for the Raspberry Pi, the BME680 and Greengrass, to run the real handlers.

`python -m device_code.simulator` runs the demo; `python -m device_code.simulator.bench` the benchmark.
Not part of the Lambda bundle.
"""
