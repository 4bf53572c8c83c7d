//! SignalWire (compatibility API, cXML): its webhook signatures; the client and renderer come later.

pub mod signature;
