"""Components that serve every stack (HAProxy, the pgBackRest repository): what the rest of pglab
needs to know of each, in one module per component."""
