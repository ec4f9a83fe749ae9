//! Request routing: method + path → what to do, with the character name
//! percent-decoded and normalised. Pure; unit-tested below.

use percent_encoding::percent_decode_str;

/// A request the node serves. Character routes carry their (decoded,
/// normalised) name, so no route can reach a handler without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Live,
    Ready,
    /// `GET /admin/cluster`: the cluster map and this node's replicas.
    AdminCluster,
    /// `POST /admin/test/peer-cut?on=1|0`: cut this node off its peers (test
    /// hook; 404 unless the node runs with `MAPLE_TEST_HOOKS=1`).
    PeerCut(bool),
    Character(Name, CharOp),
}

/// What is asked about a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharOp {
    /// `GET /api/v4/characters/{ign}/expectation[?force=true]`
    Expectation { force: bool },
    /// `GET /api/v4/characters/{ign}/expectation/preset/{n}`
    Preset(u8),
    /// `POST /api/v4/characters/{ign}/expectation/recalculate`
    Recalculate,
    /// `GET /api/v2/characters/{ign}/equipment`
    Equipment,
    /// `GET /api/v1/characters/{ign}`
    Basic,
    /// `POST /api/v2/characters/{ign}/like` (JWT user)
    LikeToggle,
    /// `GET /api/v2/characters/{ign}/like/status` (JWT user)
    LikeStatus,
}

impl Route {
    /// Label for metrics (bounded set).
    pub fn label(&self) -> &'static str {
        match self {
            Route::Metrics => "metrics",
            Route::Live => "health_live",
            Route::Ready => "health_ready",
            Route::AdminCluster => "admin_cluster",
            Route::PeerCut(_) => "admin_test",
            Route::Character(_, op) => op.label(),
        }
    }
}

impl CharOp {
    pub fn label(self) -> &'static str {
        match self {
            CharOp::Expectation { .. } => "expectation",
            CharOp::Preset(_) => "expectation_preset",
            CharOp::Recalculate => "expectation_recalculate",
            CharOp::Equipment => "equipment",
            CharOp::Basic => "basic",
            CharOp::LikeToggle => "like_toggle",
            CharOp::LikeStatus => "like_status",
        }
    }
}

/// A character name as asked (decoded, trimmed) and its placement key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub display: String,
    pub key: String,
    pub slot: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed { allow: &'static str },
    BadRequest(String),
}

impl RouteError {
    pub fn label(&self) -> &'static str {
        match self {
            RouteError::NotFound => "not_found",
            RouteError::MethodNotAllowed { .. } => "method_not_allowed",
            RouteError::BadRequest(_) => "bad_request",
        }
    }
}

pub fn route(method: &str, path: &str, query: &str) -> Result<Route, RouteError> {
    let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let (op, name_seg, allow) = match segs.as_slice() {
        ["metrics"] => return plain(method, Route::Metrics),
        ["health", "live"] => return plain(method, Route::Live),
        ["health", "ready"] => return plain(method, Route::Ready),
        ["admin", "cluster"] => return plain(method, Route::AdminCluster),
        ["admin", "test", "peer-cut"] => {
            if method != "POST" {
                return Err(RouteError::MethodNotAllowed { allow: "POST" });
            }
            return match query {
                "on=1" => Ok(Route::PeerCut(true)),
                "on=0" => Ok(Route::PeerCut(false)),
                _ => Err(RouteError::BadRequest("peer-cut takes on=1 or on=0".into())),
            };
        }
        ["api", "v4", "characters", ign, "expectation"] => (CharOp::Expectation { force: query_flag(query, "force") }, *ign, "GET"),
        ["api", "v4", "characters", ign, "expectation", "preset", n] => {
            // Method is checked before the preset number is.
            if method != "GET" {
                return Err(RouteError::MethodNotAllowed { allow: "GET" });
            }
            let n = n
                .parse::<u8>()
                .ok()
                .filter(|n| (1..=3).contains(n))
                .ok_or_else(|| RouteError::BadRequest(format!("preset must be 1, 2 or 3, got {n:?}")))?;
            (CharOp::Preset(n), *ign, "GET")
        }
        ["api", "v4", "characters", ign, "expectation", "recalculate"] => (CharOp::Recalculate, *ign, "POST"),
        ["api", "v2", "characters", ign, "equipment"] => (CharOp::Equipment, *ign, "GET"),
        ["api", "v2", "characters", ign, "like"] => (CharOp::LikeToggle, *ign, "POST"),
        ["api", "v2", "characters", ign, "like", "status"] => (CharOp::LikeStatus, *ign, "GET"),
        ["api", "v1", "characters", ign] => (CharOp::Basic, *ign, "GET"),
        _ => return Err(RouteError::NotFound),
    };
    if method != allow {
        return Err(RouteError::MethodNotAllowed { allow });
    }
    Ok(Route::Character(parse_name(name_seg)?, op))
}

fn plain(method: &str, route: Route) -> Result<Route, RouteError> {
    if method != "GET" {
        return Err(RouteError::MethodNotAllowed { allow: "GET" });
    }
    Ok(route)
}

pub fn parse_name(segment: &str) -> Result<Name, RouteError> {
    let decoded =
        percent_decode_str(segment).decode_utf8().map_err(|_| RouteError::BadRequest("character name is not valid UTF-8".into()))?;
    let key = engine::name::normalize_name(&decoded).map_err(|e| RouteError::BadRequest(e.to_string()))?;
    let slot = replication::slot_of(&key);
    Ok(Name { display: decoded.trim().to_owned(), key, slot })
}

fn query_flag(query: &str, key: &str) -> bool {
    query.split('&').any(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, "true"));
        k == key && v.eq_ignore_ascii_case("true")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: &str, path: &str, query: &str) -> CharOp {
        match route(method, path, query).unwrap() {
            Route::Character(_, op) => op,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn routes_match_the_original_paths() {
        let Route::Character(n, o) = route("GET", "/api/v4/characters/%EC%95%84%EB%8D%B8/expectation", "").unwrap() else { panic!() };
        assert_eq!(o, CharOp::Expectation { force: false });
        assert_eq!(n.display, "아델");
        assert_eq!(op("GET", "/api/v4/characters/a/expectation", "x=1&force=true"), CharOp::Expectation { force: true });
        assert_eq!(op("GET", "/api/v4/characters/a/expectation/preset/2", ""), CharOp::Preset(2));
        assert_eq!(op("POST", "/api/v4/characters/a/expectation/recalculate", ""), CharOp::Recalculate);
        assert_eq!(op("GET", "/api/v2/characters/a/equipment", ""), CharOp::Equipment);
        assert_eq!(op("GET", "/api/v1/characters/a", ""), CharOp::Basic);
        assert_eq!(route("GET", "/metrics", "").unwrap(), Route::Metrics);
        assert_eq!(op("POST", "/api/v2/characters/a/like", ""), CharOp::LikeToggle);
        assert_eq!(op("GET", "/api/v2/characters/a/like/status", ""), CharOp::LikeStatus);
        assert_eq!(route("GET", "/api/v2/characters/a/like", ""), Err(RouteError::MethodNotAllowed { allow: "POST" }));
        assert_eq!(route("GET", "/health/ready", "").unwrap(), Route::Ready);
        assert_eq!(route("POST", "/health/live", ""), Err(RouteError::MethodNotAllowed { allow: "GET" }));
    }

    #[test]
    fn wrong_method_unknown_path_and_bad_input() {
        assert_eq!(route("POST", "/api/v4/characters/a/expectation", ""), Err(RouteError::MethodNotAllowed { allow: "GET" }));
        assert_eq!(route("GET", "/api/v4/characters/a/expectation/recalculate", ""), Err(RouteError::MethodNotAllowed { allow: "POST" }));
        assert_eq!(route("GET", "/nope", ""), Err(RouteError::NotFound));
        assert_eq!(route("GET", "/api/v4/characters//expectation/x", ""), Err(RouteError::NotFound));
        assert!(matches!(route("GET", "/api/v4/characters/a/expectation/preset/4", ""), Err(RouteError::BadRequest(_))));
        assert!(matches!(route("GET", "/api/v4/characters/%20/expectation", ""), Err(RouteError::BadRequest(_))));
        assert!(matches!(route("GET", "/api/v4/characters//expectation", ""), Err(RouteError::BadRequest(_))));
        assert!(matches!(route("GET", "/api/v4/characters/%FF%FE/expectation", ""), Err(RouteError::BadRequest(_))));
        let long = "a".repeat(100);
        assert!(matches!(route("GET", &format!("/api/v1/characters/{long}"), ""), Err(RouteError::BadRequest(_))));
    }

    #[test]
    fn korean_names_decode_and_normalise() {
        for n in ["아델", "강은호", "진격캐넌"] {
            let enc: String = n.bytes().map(|b| format!("%{b:02X}")).collect();
            let Route::Character(name, _) = route("GET", &format!("/api/v2/characters/{enc}/equipment"), "").unwrap() else { panic!() };
            assert_eq!(name.display, n);
            assert_eq!(name.key, n);
            assert_eq!(name.slot, replication::slot_of(n));
        }
    }
}
