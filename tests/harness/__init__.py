"""Test harness of pagemesh: real servers and helpers that tests start.

- s3server.S3Server: moto's S3 server with SigV4 authentication on.
- httpserver.HTTPOrigin: a plain HTTP origin with switches (Range, ETag,
  HEAD refused...).
- origin_proxy (perf/origin_proxy.py, shared with the benchmark): a
  counting, shaping, fault-injecting reverse proxy in front of either;
  ``import origin_proxy`` works because tests/conftest.py puts perf/ on
  sys.path.
- util: free ports, waiting with deadlines, finding built programs.
"""
