//! The `phoenix` dialect (Phoenix Channels, serializer V2). TEMPORARY: not built yet.
