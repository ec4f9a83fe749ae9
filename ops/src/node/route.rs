//! Request routing: method + path → what to do, with the character name
//! percent-decoded and normalised. Pure; unit-tested below.

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/v4/characters/{ign}/expectation[?force=true]`
    Expectation {
        force: bool,
    },
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
    Metrics,
    Live,
    Ready,
}

impl Route {
    /// Label for metrics (bounded set).
    pub fn label(self) -> &'static str {
        match self {
            Route::Expectation { .. } => "expectation",
            Route::Preset(_) => "expectation_preset",
            Route::Recalculate => "expectation_recalculate",
            Route::Equipment => "equipment",
            Route::Basic => "basic",
            Route::LikeToggle => "like_toggle",
            Route::LikeStatus => "like_status",
            Route::Metrics => "metrics",
            Route::Live => "health_live",
            Route::Ready => "health_ready",
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

pub fn route(method: &str, path: &str, query: &str) -> Result<(Route, Option<Name>), RouteError> {
    let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let (route, name_seg, allow) = match segs.as_slice() {
        ["metrics"] => (Route::Metrics, None, "GET"),
        ["health", "live"] => (Route::Live, None, "GET"),
        ["health", "ready"] => (Route::Ready, None, "GET"),
        ["api", "v4", "characters", ign, "expectation"] => (Route::Expectation { force: query_flag(query, "force") }, Some(*ign), "GET"),
        ["api", "v4", "characters", ign, "expectation", "preset", n] => {
            let n = n
                .parse::<u8>()
                .ok()
                .filter(|n| (1..=3).contains(n))
                .ok_or_else(|| RouteError::BadRequest(format!("preset must be 1, 2 or 3, got {n:?}")));
            // Method is checked before the preset number is.
            if method != "GET" {
                return Err(RouteError::MethodNotAllowed { allow: "GET" });
            }
            (Route::Preset(n?), Some(*ign), "GET")
        }
        ["api", "v4", "characters", ign, "expectation", "recalculate"] => (Route::Recalculate, Some(*ign), "POST"),
        ["api", "v2", "characters", ign, "equipment"] => (Route::Equipment, Some(*ign), "GET"),
        ["api", "v2", "characters", ign, "like"] => (Route::LikeToggle, Some(*ign), "POST"),
        ["api", "v2", "characters", ign, "like", "status"] => (Route::LikeStatus, Some(*ign), "GET"),
        ["api", "v1", "characters", ign] => (Route::Basic, Some(*ign), "GET"),
        _ => return Err(RouteError::NotFound),
    };
    if method != allow {
        return Err(RouteError::MethodNotAllowed { allow });
    }
    let name = match name_seg {
        Some(seg) => Some(parse_name(seg)?),
        None => None,
    };
    Ok((route, name))
}

pub fn parse_name(segment: &str) -> Result<Name, RouteError> {
    let decoded =
        percent_decode_str(segment).decode_utf8().map_err(|_| RouteError::BadRequest("character name is not valid UTF-8".into()))?;
    let key = replication::normalize_name(&decoded).map_err(|e| RouteError::BadRequest(e.to_string()))?;
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

    #[test]
    fn routes_match_the_original_paths() {
        let (r, n) = route("GET", "/api/v4/characters/%EC%95%84%EB%8D%B8/expectation", "").unwrap();
        assert_eq!(r, Route::Expectation { force: false });
        assert_eq!(n.unwrap().display, "아델");
        let (r, _) = route("GET", "/api/v4/characters/a/expectation", "x=1&force=true").unwrap();
        assert_eq!(r, Route::Expectation { force: true });
        assert_eq!(route("GET", "/api/v4/characters/a/expectation/preset/2", "").unwrap().0, Route::Preset(2));
        assert_eq!(route("POST", "/api/v4/characters/a/expectation/recalculate", "").unwrap().0, Route::Recalculate);
        assert_eq!(route("GET", "/api/v2/characters/a/equipment", "").unwrap().0, Route::Equipment);
        assert_eq!(route("GET", "/api/v1/characters/a", "").unwrap().0, Route::Basic);
        assert_eq!(route("GET", "/metrics", "").unwrap(), (Route::Metrics, None));
        assert_eq!(route("POST", "/api/v2/characters/a/like", "").unwrap().0, Route::LikeToggle);
        assert_eq!(route("GET", "/api/v2/characters/a/like/status", "").unwrap().0, Route::LikeStatus);
        assert_eq!(route("GET", "/api/v2/characters/a/like", ""), Err(RouteError::MethodNotAllowed { allow: "POST" }));
        assert_eq!(route("GET", "/health/ready", "").unwrap().0, Route::Ready);
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
            let (_, name) = route("GET", &format!("/api/v2/characters/{enc}/equipment"), "").unwrap();
            let name = name.unwrap();
            assert_eq!(name.display, n);
            assert_eq!(name.key, n);
            assert_eq!(name.slot, replication::slot_of(n));
        }
    }
}
