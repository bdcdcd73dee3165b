//! Sans-IO locker workflow core.
