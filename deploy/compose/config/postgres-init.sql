-- Run once by the postgres image when its data volume is empty
-- (mounted into /docker-entrypoint-initdb.d by docker-compose.yml).
-- One server, two databases: Mooring's (DATABASE_URL) and the Anchor
-- Platform's (DATA_DATABASE). The AP creates its tables with Flyway
-- (DATA_FLYWAY_ENABLED=true), Mooring with its migrations.
CREATE DATABASE mooring;
CREATE DATABASE anchor_platform;
