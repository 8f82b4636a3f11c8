//! TEMP compile shim, replaced by the acl branch.
use super::FileError;
#[derive(Clone, Copy, Debug)] pub struct Subject<'a> { pub username: Option<&'a str>, pub client_id: &'a str }
#[derive(Clone, Copy, Debug, PartialEq, Eq)] pub enum SubscribeVerdict { Denied, Allowed, CheckEach }
pub struct Acl;
impl Acl {
    pub fn load(_path: &std::path::Path) -> Result<Acl, FileError> { todo!() }
    pub fn rule_count(&self) -> usize { 0 }
    pub fn may_publish(&self, _who: Subject<'_>, _topic: &str) -> bool { todo!() }
    pub fn may_read(&self, _who: Subject<'_>, _topic: &str) -> bool { todo!() }
    pub fn subscribe_verdict(&self, _who: Subject<'_>, _filter: &str) -> SubscribeVerdict { todo!() }
}
