//! The HTTP routes, one room per group of RabbitMQ endpoints:
//!
//! | File | Endpoints |
//! |---|---|
//! | `auth.rs` | Basic auth against broker users; tags gate what a user may call |
//! | `error.rs` | `{"error": …, "reason": …}` bodies with RabbitMQ's texts |
//! | `overview.rs` | `/api/overview`, `/api/nodes`, health checks, `/api/whoami` |
//! | `queues.rs` | `/api/queues…` |
//! | `objects.rs` | `/api/exchanges…`, `/api/bindings…` (lists) |
//! | `queue_actions.rs` | declare, delete, purge, get, actions; aliveness test |
//! | `exchange_actions.rs` | declare, delete, publish; bindings of one object |
//! | `bindings.rs` | `/api/bindings/{vhost}/e/{source}/q|e/{dest}[/{props}]` |
//! | `body.rs` | Request bodies as RabbitMQ reads them |
//! | `definitions.rs` | `/api/definitions[/{vhost}]`: export and import |
//! | `connections.rs` | `/api/connections…`, `/api/channels…`, `/api/consumers…` |
//! | `access.rs` | `/api/vhosts…`, `/api/users…`, `/api/permissions…`, `/api/topic-permissions…` |
//! | `policies.rs` | `/api/policies…`, `/api/operator-policies…` |
//! | `json.rs` | Broker rows as RabbitMQ's JSON objects |
//! | `ui.rs` | The embedded web dashboard (`mgmt/ui/`) |

mod access;
mod auth;
mod bindings;
mod body;
mod connections;
mod definitions;
mod error;
mod exchange_actions;
mod json;
mod objects;
mod overview;
mod policies;
mod queue_actions;
mod queues;
mod ui;

use std::sync::{Arc, Mutex};

use axum::routing::{get, post};
use axum::Router;

use crate::rates::RateBook;
use crate::view::BrokerView;

pub use error::ApiError;

/// What every handler gets: the broker's view and the rate samples.
#[derive(Clone)]
pub struct Api {
    view: Arc<dyn BrokerView>,
    /// Rate samples; held only while computing, never across an await.
    rates: Arc<Mutex<RateBook>>,
}

impl Api {
    /// The API over `view`.
    pub fn new(view: Arc<dyn BrokerView>) -> Api {
        Api {
            view,
            rates: Arc::new(Mutex::new(RateBook::default())),
        }
    }
}

/// Every route of the API.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/api/overview", get(overview::overview))
        .route("/api/nodes", get(overview::nodes))
        .route("/api/nodes/{node}", get(overview::node))
        .route("/api/whoami", get(overview::whoami))
        .route("/api/cluster-name", get(overview::cluster_name))
        .route("/api/extensions", get(overview::extensions))
        .route("/api/health/checks/alarms", get(overview::alarms_check))
        .route(
            "/api/health/checks/local-alarms",
            get(overview::alarms_check),
        )
        .route(
            "/api/health/checks/virtual-hosts",
            get(overview::virtual_hosts),
        )
        .route("/api/queues", get(queues::list_all))
        .route("/api/queues/{vhost}", get(queues::list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(queues::one)
                .put(queue_actions::put)
                .delete(queue_actions::delete),
        )
        .route(
            "/api/queues/{vhost}/{name}/contents",
            axum::routing::delete(queue_actions::purge),
        )
        .route("/api/queues/{vhost}/{name}/get", post(queue_actions::get))
        .route(
            "/api/queues/{vhost}/{name}/actions",
            post(queue_actions::actions),
        )
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(exchange_actions::queue_bindings),
        )
        .route("/api/queues/{vhost}/{name}/latency", get(queues::latency))
        .route("/api/aliveness-test/{vhost}", get(queue_actions::aliveness))
        .route("/api/exchanges", get(objects::exchanges_all))
        .route("/api/exchanges/{vhost}", get(objects::exchanges_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(objects::exchange)
                .put(exchange_actions::put)
                .delete(exchange_actions::delete),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(exchange_actions::publish),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(exchange_actions::bindings_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(exchange_actions::bindings_destination),
        )
        .route("/api/bindings", get(objects::bindings_all))
        .route("/api/bindings/{vhost}", get(objects::bindings_vhost))
        .route(
            "/api/bindings/{vhost}/e/{source}/q/{dest}",
            get(bindings::list_eq).post(bindings::create_eq),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/e/{dest}",
            get(bindings::list_ee).post(bindings::create_ee),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/q/{dest}/{props}",
            get(bindings::one_eq).delete(bindings::delete_eq),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/e/{dest}/{props}",
            get(bindings::one_ee).delete(bindings::delete_ee),
        )
        .route(
            "/api/definitions",
            get(definitions::export_all).post(definitions::import_all),
        )
        .route(
            "/api/definitions/{vhost}",
            get(definitions::export_vhost).post(definitions::import_vhost),
        )
        .route("/api/connections", get(connections::list))
        .route(
            "/api/connections/{name}",
            get(connections::one).delete(connections::close),
        )
        .route(
            "/api/connections/{name}/channels",
            get(connections::channels_of),
        )
        .route(
            "/api/vhosts/{vhost}/connections",
            get(connections::list_vhost),
        )
        .route(
            "/api/vhosts/{vhost}/channels",
            get(connections::channels_vhost),
        )
        .route("/api/channels", get(connections::channels))
        .route("/api/channels/{name}", get(connections::channel))
        .route("/api/consumers", get(connections::consumers))
        .route("/api/consumers/{vhost}", get(connections::consumers_vhost))
        .route("/api/vhosts", get(access::vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(access::vhost)
                .put(access::put_vhost)
                .delete(access::delete_vhost),
        )
        .route(
            "/api/vhosts/{vhost}/permissions",
            get(access::vhost_permissions),
        )
        .route(
            "/api/vhosts/{vhost}/topic-permissions",
            get(access::vhost_topic_permissions),
        )
        .route("/api/users", get(access::users))
        .route(
            "/api/users/without-permissions",
            get(access::users_without_permissions),
        )
        .route("/api/users/bulk-delete", post(access::bulk_delete_users))
        .route(
            "/api/users/{user}",
            get(access::user)
                .put(access::put_user)
                .delete(access::delete_user),
        )
        .route(
            "/api/users/{user}/permissions",
            get(access::user_permissions),
        )
        .route(
            "/api/users/{user}/topic-permissions",
            get(access::user_topic_permissions),
        )
        .route("/api/permissions", get(access::permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(access::permission)
                .put(access::put_permission)
                .delete(access::delete_permission),
        )
        .route("/api/topic-permissions", get(access::topic_permissions))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(access::topic_permission)
                .put(access::put_topic_permission)
                .delete(access::delete_topic_permissions),
        )
        .route(
            "/api/topic-permissions/{vhost}/{user}/{exchange}",
            get(access::topic_permission_of_exchange).delete(access::delete_topic_permission),
        )
        .route("/api/policies", get(policies::policies))
        .route("/api/policies/{vhost}", get(policies::policies_vhost))
        .route(
            "/api/policies/{vhost}/{name}",
            get(policies::policy)
                .put(policies::put_policy)
                .delete(policies::delete_policy),
        )
        .route("/api/operator-policies", get(policies::operator_policies))
        .route(
            "/api/operator-policies/{vhost}",
            get(policies::operator_policies_vhost),
        )
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(policies::operator_policy)
                .put(policies::put_operator_policy)
                .delete(policies::delete_operator_policy),
        )
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::require_login,
        ))
        .merge(ui::routes())
        .with_state(api)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
