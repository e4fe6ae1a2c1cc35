//! The writer document's title, tags and security scheme; its paths come
//! from the annotations of the ingest and status handlers (see
//! [`crate::openapi`]).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CacheBridge writer API",
        description = "How a trading service pushes ticks into the bridge (`POST /ingest`), and the writer's health, \
readiness and metrics. The status endpoints are also served alone on `--status-listen`. Every server answers `503` \
(`text/plain`, `Retry-After: 1`) to a connection over its connection cap, before reading the request.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    tags(
        (name = "ingest", description = "Ticks from the trading service"),
        (name = "operations", description = "Health, readiness and metrics, for probes and Prometheus"),
        (name = "documentation", description = "This document"),
    ),
    modifiers(&IngestToken)
)]
pub struct WriterApi;

/// `Authorization: Bearer <token>`, required when the writer has a token file.
struct IngestToken;

impl Modify for IngestToken {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "The content of the writer's `--ingest-token-file` (the Secret `<bridge>-ingest-token`); \
             required only when a token file is configured"
                .into(),
        );
        components.add_security_scheme("ingest_token", SecurityScheme::Http(bearer));
    }
}
