// The list pane: filters, search, selection and bulk actions, list keys (see keys.js).
