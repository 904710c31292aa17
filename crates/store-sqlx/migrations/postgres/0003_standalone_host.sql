-- The standalone host's tables (sponsorctl's organizations, members and licenses), for a
-- server that has none of its own. Names and e-mails are unique without regard to case:
-- name_key and email_key hold their lowercase forms.
CREATE TABLE organizations (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    name VARCHAR(256) NOT NULL,
    name_key VARCHAR(256) NOT NULL UNIQUE,
    plan_type SMALLINT NOT NULL,
    enabled SMALLINT NOT NULL,
    use_admin_sponsored_families SMALLINT NOT NULL,
    cloud_organization_id VARCHAR(36),
    license_json TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE members (
    id VARCHAR(36) NOT NULL PRIMARY KEY,
    organization_id VARCHAR(36) NOT NULL REFERENCES organizations (id),
    email VARCHAR(320) NOT NULL,
    email_key VARCHAR(320) NOT NULL,
    status VARCHAR(16) NOT NULL,
    role VARCHAR(16) NOT NULL,
    UNIQUE (organization_id, email_key)
);
