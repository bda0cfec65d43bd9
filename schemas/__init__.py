"""The event contract shared by producers, stream processors and sinks.

* ``schemas/avro/**.avsc`` - the source of truth (one named type per file);
  :mod:`schemas.avsc` composes self-contained schemas and reads ``avro/history``.
* :mod:`schemas.models` - frozen pydantic models mirroring every record, with
  ``to_avro`` / ``from_avro``.
* :mod:`schemas.topics` - every topic, subject, consumer-group name and message key.
* :mod:`schemas.serde` - configured Confluent Avro (de)serializers for the models.
* :mod:`schemas.registry` - BACKWARD compatibility and registration.
* :mod:`schemas.compatibility` - a pure-Python Avro BACKWARD checker.
* :mod:`schemas.contract` - model-vs-schema comparison (drift detection).
* :mod:`schemas.examples` - realistic sample records for tests and demos.
"""
