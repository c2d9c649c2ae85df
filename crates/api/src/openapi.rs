//! `/openapi.json`: the OpenAPI 3.0 description of every route in [`ROUTES`], its request and
//! answer schemas generated from the handlers' own types (schemars), so the document cannot
//! describe a type the handler does not use.

use alpha_panda_store::Role;
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::error::ErrorBody;
use crate::routes::{Access, ROUTES};

fn error_response(g: &mut schemars::SchemaGenerator, description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": g.subschema_for::<ErrorBody>()}}
    })
}

/// The document.
pub fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let mut parameters: Vec<Value> = Vec::new();
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let description = match name {
                    "broker" => "the namespace: `paper` or `zerodha`",
                    "id" => "the strategy or portfolio id",
                    "username" => "the username",
                    _ => name,
                };
                parameters.push(json!({
                    "name": name, "in": "path", "required": true,
                    "description": description, "schema": {"type": "string"}
                }));
            }
        }
        for (name, description) in route.query {
            let schema = if *name == "limit" {
                json!({"type": "integer", "minimum": 1, "maximum": 1000})
            } else {
                json!({"type": "string"})
            };
            let required = (*name == "portfolio"
                && (route.path.ends_with("/equity") || route.path.ends_with("/pnl/snapshots")))
                || (*name == "tokens" && route.path == "/api/v1/market/last");
            let schema = if *name == "status" && route.path.ends_with("/signals") {
                json!({"type": "string", "enum": ["validated", "rejected", "at_target"]})
            } else {
                schema
            };
            parameters.push(json!({
                "name": name, "in": "query", "required": required,
                "description": description, "schema": schema
            }));
        }
        let mut responses = Map::new();
        let success = match route.response {
            Some(schema) => json!({
                "description": "success",
                "content": {"application/json": {"schema": schema(&mut generator)}}
            }),
            None if route.path == "/api/v1/events" => json!({
                "description": "an event stream",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}
            }),
            None => json!({"description": "done, no body"}),
        };
        responses.insert(route.status.to_string(), success);
        let has_path = route.path.contains('{');
        let has_input = route.request.is_some() || !route.query.is_empty();
        if has_input || has_path {
            responses.insert(
                "400".into(),
                error_response(&mut generator, "the request cannot be read"),
            );
            responses.insert(
                "422".into(),
                error_response(
                    &mut generator,
                    "a value is not acceptable; the message names it",
                ),
            );
        }
        if route.method == "DELETE" {
            responses.insert(
                "422".into(),
                error_response(
                    &mut generator,
                    "a value is not acceptable; the message names it",
                ),
            );
        }
        if has_path || route.path == "/api/v1/dlq/replay" {
            responses.insert(
                "404".into(),
                error_response(&mut generator, "no such namespace or resource"),
            );
        }
        if (route.method == "POST" && route.status == 201) || route.method == "DELETE" {
            responses.insert(
                "409".into(),
                error_response(&mut generator, "it exists already"),
            );
        }
        if route.path == "/health/ready" {
            responses.insert("503".into(), json!({
                "description": "a dependency fails",
                "content": {"application/json": {"schema": generator.subschema_for::<crate::routes::health::Readiness>()}}
            }));
        } else if route.path != "/health/live" {
            responses.insert(
                "503".into(),
                error_response(
                    &mut generator,
                    "a dependency (database, cache, log) is unavailable",
                ),
            );
        }
        if route.path == "/api/v1/auth/login" {
            responses.insert(
                "401".into(),
                error_response(&mut generator, "wrong username or password"),
            );
            responses.insert(
                "429".into(),
                error_response(&mut generator, "too many failed logins; see Retry-After"),
            );
        }
        if route.path == "/api/v1/auth/refresh" {
            responses.insert(
                "401".into(),
                error_response(
                    &mut generator,
                    "the refresh token is unknown, used, revoked or expired",
                ),
            );
        }
        let mut operation = json!({
            "summary": route.summary,
            "operationId": format!("{} {}", route.method, route.path),
            "parameters": parameters,
        });
        match route.access {
            Access::Public => {
                operation["security"] = json!([]);
            }
            Access::Role(role) => {
                operation["security"] = json!([{"bearer": []}]);
                operation["x-required-role"] = json!(role.as_str());
                responses.insert(
                    "401".into(),
                    error_response(&mut generator, "no valid access token"),
                );
                if role != Role::Viewer {
                    responses.insert(
                        "403".into(),
                        error_response(&mut generator, "the caller's role may not"),
                    );
                }
            }
        }
        if let Some(request) = route.request {
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": request(&mut generator)}}
            });
        }
        operation["responses"] = Value::Object(responses);
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.to_lowercase()] = operation;
    }
    let schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Alpha Panda",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The operator API of Alpha Panda: portfolios, orders, fills, strategies, the kill switch, the pipeline and live events, per broker namespace."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        }
    })
}
