-- The billing sync connection of an organization ("Manage billing sync"): the key an admin
-- saved and its switch. The cloud organization id is the host's (from the license).
CREATE TABLE billing_sync_connections (
    organization_id VARCHAR(36) NOT NULL PRIMARY KEY,
    billing_sync_key VARCHAR(64) NOT NULL,
    enabled SMALLINT NOT NULL,
    updated_at BIGINT NOT NULL
);
