//! Which provider accounts may carry a call, and in which order they are tried.
//!
//! An account with a list of countries calls only numbers of those
//! countries. Among the accounts allowed, the request's id picks the first
//! in proportion to the accounts' weights (so calls spread by weight, and
//! every server picks the same account for the same request); the others
//! follow by weight. An account being skipped (it failed a moment ago) goes
//! to the end: it is tried only when every other one failed too.

use chrono::{DateTime, Utc};

use super::phone::Region;

/// What the rule needs to know of an account.
#[derive(Debug, Clone)]
pub struct Route<'a> {
    pub countries: &'a [Region],
    pub weight: u32,
    /// Until when it is skipped, if it failed lately.
    pub skipped_until: Option<DateTime<Utc>>,
}

impl Route<'_> {
    fn may_call(&self, country: Option<Region>) -> bool {
        self.countries.is_empty() || country.is_some_and(|c| self.countries.contains(&c))
    }
}

/// The indexes of the accounts of `routes` to try for a call to a number
/// of `country`, in order. `spread` is a number the request brings (its id),
/// the same every time it is asked.
pub fn order(routes: &[Route<'_>], country: Option<Region>, spread: u64, now: DateTime<Utc>) -> Vec<usize> {
    let allowed: Vec<usize> = (0..routes.len()).filter(|&i| routes[i].may_call(country)).collect();
    let skipped = |i: &usize| routes[*i].skipped_until.is_some_and(|until| until > now);
    let (mut up, down): (Vec<usize>, Vec<usize>) = allowed.into_iter().partition(|i| !skipped(i));
    up.sort_by_key(|&i| std::cmp::Reverse(routes[i].weight));
    let total: u64 = up.iter().map(|&i| u64::from(routes[i].weight.max(1))).sum();
    if total > 0 {
        let mut point = spread % total;
        let first = up.iter().position(|&i| {
            let w = u64::from(routes[i].weight.max(1));
            if point < w {
                return true;
            }
            point -= w;
            false
        });
        if let Some(pos) = first {
            let chosen = up.remove(pos);
            up.insert(0, chosen);
        }
    }
    up.extend(down);
    up
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jp() -> Region {
        Region::parse("JP").unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_900_000, 0).unwrap()
    }

    #[test]
    fn accounts_limited_to_other_countries_are_not_asked() {
        let us = [Region::parse("US").unwrap()];
        let japan = [jp()];
        let routes = [
            Route { countries: &us, weight: 1, skipped_until: None },
            Route { countries: &japan, weight: 1, skipped_until: None },
            Route { countries: &[], weight: 1, skipped_until: None },
        ];
        let mut order = order(&routes, Some(jp()), 0, now());
        order.sort_unstable();
        assert_eq!(order, vec![1, 2]);
    }

    #[test]
    fn calls_spread_by_weight_and_a_skipped_account_comes_last() {
        let routes = [
            Route { countries: &[], weight: 2, skipped_until: None },
            Route { countries: &[], weight: 1, skipped_until: None },
        ];
        let firsts: Vec<usize> = (0..3).map(|spread| order(&routes, Some(jp()), spread, now())[0]).collect();
        assert_eq!(firsts, vec![0, 0, 1]);
        let skipped = [
            Route { countries: &[], weight: 2, skipped_until: Some(now() + chrono::TimeDelta::seconds(30)) },
            Route { countries: &[], weight: 1, skipped_until: None },
        ];
        assert_eq!(order(&skipped, Some(jp()), 0, now()), vec![1, 0]);
        let over = [Route { countries: &[], weight: 2, skipped_until: Some(now()) }];
        assert_eq!(order(&over, None, 0, now()), vec![0], "a skip that has ended is over");
    }
}
