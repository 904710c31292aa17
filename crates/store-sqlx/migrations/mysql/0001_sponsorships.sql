-- Rows, sync state and the sync lock. Times are microseconds since the Unix epoch (UTC), ids
-- are UUIDs in their hyphenated lowercase form, flags are 0/1: one encoding for every backend.
-- Binary collation: ids compare byte for byte, as on PostgreSQL.
CREATE TABLE sponsorships (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    sponsoring_organization_id VARCHAR(36),
    sponsoring_member_id VARCHAR(36) NOT NULL,
    friendly_name TEXT,
    offered_to_email TEXT,
    plan_sponsorship_type SMALLINT,
    last_sync_date BIGINT,
    valid_until BIGINT,
    to_delete SMALLINT NOT NULL,
    is_admin_initiated SMALLINT NOT NULL,
    notes TEXT,
    revision BIGINT NOT NULL,
    awaiting_sync SMALLINT NOT NULL,
    superseded_offer TEXT,
    revision_date BIGINT NOT NULL,
    -- A sync loads an organization's rows in member order.
    INDEX sponsorships_org_member (sponsoring_organization_id, sponsoring_member_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE sync_state (
    organization_id VARCHAR(36) NOT NULL PRIMARY KEY,
    last_attempt BIGINT,
    last_success BIGINT,
    last_error_category VARCHAR(64),
    last_error_message TEXT,
    last_error_at BIGINT,
    next_due BIGINT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    last_license_sync BIGINT
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One lease per organization: renewed by its holder with compare-and-set on its token.
CREATE TABLE sync_locks (
    organization_id VARCHAR(36) NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    token VARCHAR(64) NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
