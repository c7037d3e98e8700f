"""Log storage: one interface (:mod:`.base`), a backend per database."""
