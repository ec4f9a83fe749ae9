//! The V4 response, field for field as the original's V4 API returns it
//! (camelCase). Where we differ on purpose, the field's comment says why
//! (see ../shared/ORIGINAL_DEFECTS.md and the README).

use serde::Serialize;

/// Costs by source. Meso amounts; fractional where the starforce expectation is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostBreakdown {
    pub black_cube_cost: f64,
    pub red_cube_cost: f64,
    pub additional_cube_cost: f64,
    pub starforce_cost: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CubeExpectation {
    /// round(expected trials) × cost per trial; 0 when `available` is false.
    pub expected_cost: f64,
    pub expected_cost_text: String,
    pub expected_trials: u64,
    /// Korean grade of the line set ("레전드리"), null when the item has none.
    pub current_grade: Option<String>,
    /// English grade name ("LEGENDARY"), null when the item has none.
    pub target_grade: Option<String>,
    /// The option lines joined with " | ".
    pub potential: String,
    /// Ours: false when the table cannot price this line set (no rows for the
    /// level/part/grade, no additional-potential odds, or an impossible line
    /// set). The original priced those at 0 with no flag.
    pub available: bool,
    /// Why it is unavailable; absent when available.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StarforceExpectation {
    pub current_star: u32,
    pub target_star: u32,
    pub is_noljang: bool,
    pub cost_without_destroy_prevention: f64,
    pub cost_without_destroy_prevention_text: String,
    pub expected_destroy_count_without: f64,
    pub cost_with_destroy_prevention: f64,
    pub cost_with_destroy_prevention_text: String,
    pub expected_destroy_count_with: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlameExpectation {
    pub powerful_flame_trials: f64,
    pub eternal_flame_trials: f64,
    pub abyss_flame_trials: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemExpectation {
    pub item_name: String,
    pub item_icon: String,
    pub item_part: String,
    pub item_level: u32,
    pub expected_cost: f64,
    pub expected_cost_text: String,
    pub cost_breakdown: CostBreakdown,
    pub enhance_path: String,
    pub potential_grade: Option<String>,
    pub additional_potential_grade: Option<String>,
    pub current_star: u32,
    pub target_star: u32,
    /// The original's serializer writes `noljang`; its spec says `isNoljang`.
    pub is_noljang: bool,
    pub special_ring_level: u32,
    pub black_cube_expectation: CubeExpectation,
    pub additional_cube_expectation: CubeExpectation,
    pub starforce_expectation: StarforceExpectation,
    pub flame_expectation: FlameExpectation,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresetExpectation {
    pub preset_no: u8,
    pub total_expected_cost: f64,
    pub total_cost_text: String,
    pub cost_breakdown: CostBreakdown,
    pub items: Vec<ItemExpectation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpectationResponse {
    pub user_ign: String,
    /// ISO-8601 local date-time, as the original ("2026-11-23T09:40:00").
    pub calculated_at: String,
    pub from_cache: bool,
    pub total_expected_cost: f64,
    pub total_cost_text: String,
    pub total_cost_breakdown: CostBreakdown,
    pub max_preset_no: u8,
    pub presets: Vec<PresetExpectation>,
}

impl ExpectationResponse {
    /// Preset `n` (1..=3) if it has items.
    pub fn preset(&self, n: u8) -> Option<&PresetExpectation> {
        self.presets.iter().find(|p| p.preset_no == n)
    }
}

/// `serde_json::to_vec(resp)` and each preset's byte range in it (index n-1
/// for preset n), writing every preset once: the header is the response
/// serialised without its presets (`presets` is its last field), then the
/// presets one after another. Same bytes as `to_vec` (tested); ranges as
/// [`preset_spans`] finds them.
pub fn to_json_with_preset_spans(resp: &mut ExpectationResponse) -> serde_json::Result<(Vec<u8>, PresetSpans)> {
    let presets = std::mem::take(&mut resp.presets);
    let head = serde_json::to_vec(&*resp);
    resp.presets = presets;
    let head = head?;
    let Some(prefix) = head.strip_suffix(b"[]}") else {
        return Err(serde::ser::Error::custom("`presets` is not the response's last field"));
    };
    let mut out = Vec::with_capacity(prefix.len() + 128 * 1024);
    out.extend_from_slice(prefix);
    out.push(b'[');
    let mut spans = PresetSpans::default();
    for (i, preset) in resp.presets.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let start = out.len();
        serde_json::to_writer(&mut out, preset)?;
        if let Some(span) = spans.get_mut(usize::from(preset.preset_no).wrapping_sub(1)) {
            *span = Some(start..out.len());
        }
    }
    out.extend_from_slice(b"]}");
    Ok((out, spans))
}

/// Index n-1: the byte range of preset n in a serialised response.
pub type PresetSpans = [Option<std::ops::Range<usize>>; 3];

/// Where each preset's object sits inside a serialised [`ExpectationResponse`]
/// (`serde_json::to_vec`): index n-1 holds the byte range of preset n, whose
/// bytes equal `serde_json::to_vec` of that preset alone (compact JSON writes
/// a nested value exactly as it writes it alone). Lets the server keep one
/// rendering and cut the per-preset documents out of it instead of
/// serialising every preset twice.
///
/// `None` when `json` is not such a response (then the caller renders the
/// presets itself). The scan skips string bodies word-wise, so it costs a
/// small fraction of serialising.
pub fn preset_spans(json: &[u8]) -> Option<PresetSpans> {
    use super::equipment::string_end;
    // `"presets":[` with unescaped quotes can only be the key: inside a
    // string value its quotes would be written `\"`.
    const KEY: &[u8] = br#""presets":["#;
    const PRESET_NO: &[u8] = br#"{"presetNo":"#;
    let mut at = json.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let mut spans = PresetSpans::default();
    if json.get(at) == Some(&b']') {
        return (json.get(at + 1..)? == b"}").then_some(spans);
    }
    loop {
        let start = at;
        if !json.get(start..)?.starts_with(PRESET_NO) {
            return None;
        }
        // The matching close brace of this object.
        let mut depth = 0usize;
        loop {
            match *json.get(at)? {
                b'"' => {
                    at = string_end(json, at + 1);
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        at += 1;
                        break;
                    }
                }
                _ => {}
            }
            at += 1;
        }
        let digit = *json.get(start + PRESET_NO.len())?;
        let n = match (digit, json.get(start + PRESET_NO.len() + 1)) {
            (b'1'..=b'3', Some(b',')) => (digit - b'0') as usize,
            _ => return None,
        };
        if spans[n - 1].replace(start..at).is_some() {
            return None; // the same preset twice
        }
        match json.get(at..at + 1)? {
            b"," => at += 1,
            b"]" => return (json.get(at + 1..)? == b"}").then_some(spans),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expectation::Calculator;

    fn fixture(name: &str) -> Vec<u8> {
        crate::expectation::test_fixture(name)
    }

    fn response(name: &str) -> ExpectationResponse {
        Calculator::embedded().compute("tester \"[{", &fixture(name), "2026-11-23T10:00:00".into()).unwrap()
    }

    #[test]
    fn preset_spans_cut_out_exactly_each_presets_own_json() {
        for name in ["evan_equip.json", "mechanic_equip.json"] {
            let resp = response(name);
            let json = serde_json::to_vec(&resp).unwrap();
            let spans = preset_spans(&json).expect("a V4 response");
            for n in 1..=3u8 {
                let own = resp.preset(n).map(|p| serde_json::to_vec(p).unwrap());
                let cut = spans[n as usize - 1].clone().map(|r| json[r].to_vec());
                assert_eq!(cut, own, "{name} preset {n}");
            }
            assert!(spans.iter().any(Option::is_some));
            let mut again = resp.clone();
            assert_eq!(to_json_with_preset_spans(&mut again).unwrap(), (json, spans), "{name}");
            assert_eq!(again, resp, "presets put back");
        }
    }

    #[test]
    fn preset_spans_handle_missing_presets_and_reject_other_documents() {
        let mut resp = response("evan_equip.json");
        resp.presets.remove(1); // presets 1 and 3 only
        let json = serde_json::to_vec(&resp).unwrap();
        let spans = preset_spans(&json).unwrap();
        assert!(spans[0].is_some() && spans[1].is_none() && spans[2].is_some());
        assert_eq!(to_json_with_preset_spans(&mut resp).unwrap(), (json, spans));
        resp.presets.clear();
        assert_eq!(preset_spans(&serde_json::to_vec(&resp).unwrap()), Some([None, None, None]));
        assert_eq!(to_json_with_preset_spans(&mut resp).unwrap(), (serde_json::to_vec(&resp).unwrap(), [None, None, None]));
        for bad in [&b""[..], b"{}", br#"{"presets":[{"presetNo":4,"x":1}]}"#, br#"{"presets":[{"presetNo":1,"x":"}"#] {
            assert_eq!(preset_spans(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        let twice = br#"{"presets":[{"presetNo":1,"x":1},{"presetNo":1,"x":2}]}"#;
        assert_eq!(preset_spans(twice), None);
    }
}
