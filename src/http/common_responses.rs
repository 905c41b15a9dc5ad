//! What the edge may answer on any operation, added to the OpenAPI document once instead of to
//! each handler's annotation, so the document lists every status the server can send (the
//! contract run, `scripts/test-contract.sh`, fails on any status it does not list).
//!
//! Every operation may answer 400 (a control character in the query or a path segment, a query
//! that does not parse) and 503 (no Postgres connection in time, a full queue). One with a JSON
//! body may answer 400 (`malformed_json`, `unreadable_body`), 413, 415 and 422 (a field, a
//! control character or a key given twice, anywhere in the body). One with path parameters may
//! answer 404 (a segment that cannot name anything). One behind credentials may answer 401, and
//! 429 once its caller's address drew too many 401s (`auth.unauthorized_per_address`). A status
//! an operation documents itself keeps its own description.
//!
//! It also keeps composed schemas satisfiable: a part of an `allOf` that refuses properties
//! other than its own (a request type with `deny_unknown_fields`, flattened into a response)
//! would refuse the other parts' properties, so such a part is inlined without that refusal.

use utoipa::{
    openapi::{
        path::{Operation, ParameterIn},
        schema::{Ref, Schema},
        Content, OpenApi, RefOr, ResponseBuilder,
    },
    Modify,
};

/// Adds the edge's answers to every operation.
pub struct CommonResponses;

/// An answer the edge may give: the status and what it means.
struct Common {
    status: u16,
    description: &'static str,
}

const ANY_REQUEST: &[Common] = &[
    Common {
        status: 400,
        description: "`invalid_characters` (a control character in a query parameter or a path \
                      segment) or `invalid_query` (a query parameter that does not parse, or is \
                      out of its range); `field` names the parameter",
    },
    Common {
        status: 503,
        description: "`service_unavailable`: a dependency (Postgres, Redis) or a bounded queue \
                      cannot serve now; retry",
    },
];

const WITH_BODY: &[Common] = &[
    Common {
        status: 400,
        description: "`malformed_json` (the body is not JSON), `unreadable_body`, or a query \
                      parameter or path segment refused (`invalid_characters`, `invalid_query`)",
    },
    Common {
        status: 413,
        description: "`payload_too_large`: the body is larger than `http.max_body_bytes`",
    },
    Common {
        status: 415,
        description: "`unsupported_media_type`: the body is not `application/json`",
    },
    Common {
        status: 422,
        description: "A field is missing, unknown or invalid (`missing_field`, `unknown_field`, \
                      `invalid_field`, `invalid_characters`, `duplicate_key`, …); `field` names \
                      it as a JSON path",
    },
];

const WITH_PATH: &[Common] = &[Common {
    status: 404,
    description: "`not_found`: no such resource, or one the caller may not see",
}];

const WITH_CREDENTIALS: &[Common] = &[
    Common {
        status: 401,
        description: "`unauthorized`: the credentials are missing, unknown, expired or revoked",
    },
    Common {
        status: 429,
        description: "`rate_limited`: this client address drew too many 401s in the window \
                      (`auth.unauthorized_per_address`); `Retry-After` says when to try again",
    },
];

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let shared_path_parameters = item
                .parameters
                .iter()
                .flatten()
                .any(|parameter| parameter.parameter_in == ParameterIn::Path);
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_common_responses(operation, shared_path_parameters);
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            let schemas = components.schemas.clone();
            for schema in components.schemas.values_mut() {
                inline_closed_parts(schema, &schemas);
            }
        }
    }
}

fn add_common_responses(operation: &mut Operation, shared_path_parameters: bool) {
    let has_body = operation.request_body.is_some();
    let has_path = shared_path_parameters
        || operation
            .parameters
            .iter()
            .flatten()
            .any(|parameter| parameter.parameter_in == ParameterIn::Path);
    let has_credentials = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let groups: [(bool, &[Common]); 4] = [
        (has_body, WITH_BODY),
        (true, ANY_REQUEST),
        (has_path, WITH_PATH),
        (has_credentials, WITH_CREDENTIALS),
    ];
    for common in groups
        .into_iter()
        .filter(|(applies, _)| *applies)
        .flat_map(|(_, commons)| commons)
    {
        operation
            .responses
            .responses
            .entry(common.status.to_string())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(common.description)
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                    )
                    .build()
                    .into()
            });
    }
}

/// Replaces each `$ref` part of an `allOf` whose target refuses additional properties with a
/// copy of the target that does not.
fn inline_closed_parts(
    schema: &mut RefOr<Schema>,
    schemas: &std::collections::BTreeMap<String, RefOr<Schema>>,
) {
    let RefOr::T(Schema::AllOf(all_of)) = schema else {
        return;
    };
    for part in &mut all_of.items {
        let RefOr::Ref(reference) = part else {
            continue;
        };
        let name = reference
            .ref_location
            .rsplit('/')
            .next()
            .unwrap_or_default();
        if let Some(RefOr::T(Schema::Object(object))) = schemas.get(name) {
            if object.additional_properties.is_some() {
                let mut open = object.clone();
                open.additional_properties = None;
                *part = RefOr::T(Schema::Object(open));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use crate::http::openapi::ApiDoc;

    fn document() -> serde_json::Value {
        serde_json::to_value(ApiDoc::openapi()).expect("the document serializes")
    }

    #[test]
    fn every_operation_with_a_body_documents_the_body_refusals() {
        let document = document();
        let paths = document["paths"].as_object().expect("paths");
        let mut checked = 0;
        for (path, item) in paths {
            for (method, operation) in item.as_object().expect("a path item") {
                if operation.get("requestBody").is_none() {
                    continue;
                }
                for status in ["400", "413", "415", "422", "503"] {
                    assert!(
                        operation["responses"].get(status).is_some(),
                        "{method} {path} does not document {status}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked > 20, "only {checked} operations with a body");
    }

    #[test]
    fn operations_behind_credentials_document_401_and_429() {
        let document = document();
        let cart_item = &document["paths"]["/api/v1/carts/{id}/items/{sku}"]["delete"];
        for status in ["400", "401", "404", "429", "503"] {
            assert!(
                cart_item["responses"].get(status).is_some(),
                "DELETE of a cart item does not document {status}"
            );
        }
    }

    #[test]
    fn a_stored_region_may_carry_its_code_beside_the_input_fields() {
        let document = document();
        let region = &document["components"]["schemas"]["Region"];
        let parts = region["allOf"].as_array().expect("Region is composed");
        assert!(
            parts
                .iter()
                .any(|part| part["properties"].get("code").is_some()),
            "{region}"
        );
        for part in parts {
            assert!(
                part.get("$ref").is_none(),
                "a part is still a reference: {region}"
            );
            assert_ne!(
                part.get("additionalProperties"),
                Some(&serde_json::Value::Bool(false)),
                "a part refuses the others' properties: {region}"
            );
        }
    }
}
