package kfsim

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// canReadStore reports whether perms allow reading st: globally or for its
// container.
func canReadStore(perms []string, st *Store) bool {
	return hasPermission(perms, PermStoresRead, containerPtr(st))
}

func containerPtr(st *Store) *int {
	if st.ContainerId == 0 {
		return nil
	}
	id := st.ContainerId
	return &id
}

// storeModel renders a store as GET /CertificateStores does [REC id 3].
func (s *Server) storeModel(st *Store) wireStore {
	props := "{}"
	if len(st.Properties) > 0 {
		b, _ := json.Marshal(st.Properties)
		props = string(b)
	}
	m := wireStore{
		Id:                st.Id,
		ContainerId:       containerPtr(st),
		DisplayName:       st.ClientMachine + " - " + st.StorePath,
		ClientMachine:     st.ClientMachine,
		Storepath:         st.StorePath,
		CertStoreType:     st.CertStoreType,
		Approved:          !st.Unapproved,
		Properties:        props,
		AgentAssigned:     !st.NoAgent,
		InventorySchedule: map[string]any{},
	}
	if !st.NoAgent {
		agent := nameGUID("agent:" + strings.ToLower(st.ClientMachine))
		m.AgentId = &agent
	}
	if ct := s.containers[st.ContainerId]; ct != nil {
		name := ct.Name
		m.ContainerName = &name
	}
	return m
}

func storeValue(st *Store, f string) fieldValue {
	switch f {
	case "Id":
		return fieldValue{str: st.Id}
	case "ContainerId":
		if st.ContainerId == 0 {
			return fieldValue{null: true}
		}
		return fieldValue{num: int64(st.ContainerId)}
	case "ClientMachine":
		return fieldValue{str: st.ClientMachine}
	case "StorePath":
		return fieldValue{str: st.StorePath}
	case "CertStoreType":
		return fieldValue{num: int64(st.CertStoreType)}
	}
	return fieldValue{null: true}
}

// listStores answers GET /CertificateStores with the stores the caller may
// read (certificateStoreQuery.* or unprefixed paging).
func (s *Server) listStores(c *call) response {
	lq, errResp := s.listQuery(c, storeFields, "Id", "certificateStoreQuery")
	if errResp != nil {
		return *errResp
	}
	var found []*Store
	for _, id := range s.storeOrder {
		st := s.stores[id]
		if !canReadStore(c.perms, st) {
			continue
		}
		if lq.q.matches(func(f string) fieldValue { return storeValue(st, f) }) {
			found = append(found, st)
		}
	}
	sortPage(found, lq, storeValue, "Id")
	start, end := pageOf(len(found), lq.page, lq.limit)
	out := make([]wireStore, 0, end-start)
	for _, st := range found[start:end] {
		out = append(out, s.storeModel(st))
	}
	return listResponse(out, len(found))
}

// getStore answers GET /CertificateStores/{id}.
func (s *Server) getStore(c *call) response {
	st := s.stores[strings.ToLower(c.param)]
	if st == nil {
		return errorResponse(http.StatusNotFound, codeNotFound, "Certificate store with id "+c.param+" was not found.")
	}
	if !canReadStore(c.perms, st) {
		return forbidden(PermStoresRead)
	}
	return jsonResponse(http.StatusOK, s.storeModel(st))
}

// storeTypeModel renders a store type as GET /CertificateStoreTypes does
// [REC id 0].
func (s *Server) storeTypeModel(t *StoreType) wireStoreType {
	m := wireStoreType{
		Name:                t.Name,
		ShortName:           t.ShortName,
		Capability:          t.ShortName,
		StoreType:           t.StoreType,
		SupportedOperations: wireStoreTypeOperations{Add: true, Remove: true},
		Properties:          []any{},
		EntryParameters:     []any{},
		PasswordOptions:     wirePasswordOptions{EntrySupported: t.EntryPasswordSupported, Style: "Default"},
		PrivateKeyAllowed:   "Optional",
		JobProperties:       []string{},
		CustomAliasAllowed:  t.CustomAliasAllowed,
		InventoryEndpoint:   "/AnyInventory/Update",
		InventoryJobType:    nameGUID("inventory:" + t.ShortName),
		ManagementJobType:   nameGUID("management:" + t.ShortName),
		DiscoveryJobType:    nameGUID("discovery:" + t.ShortName),
	}
	if s.opts.NumericStoreTypeEnums {
		// The v10 OpenAPI file declares these as integer enums 0, 1, 2;
		// reading them in the order Forbidden, Optional, Required is the
		// simulator's guess (UNCONFIRMED).
		m.CustomAliasAllowed = map[string]int{AliasForbidden: 0, AliasOptional: 1, AliasRequired: 2}[t.CustomAliasAllowed]
		m.PrivateKeyAllowed = 1
		m.PasswordOptions.Style = 0
	}
	return m
}

// listStoreTypes answers GET /CertificateStoreTypes. Any store read
// permission (global or for a container) lets the caller see the types
// (UNCONFIRMED: the endpoint's permission is not documented).
func (s *Server) listStoreTypes(c *call) response {
	if !hasAnyScope(c.perms, PermStoresRead) {
		return forbidden(PermStoresRead)
	}
	lq, errResp := s.listQuery(c, storeTypeFields, "StoreType", "cstquery")
	if errResp != nil {
		return *errResp
	}
	ids := make([]int, 0, len(s.storeTypes))
	for id := range s.storeTypes {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	var found []*StoreType
	for _, id := range ids {
		t := s.storeTypes[id]
		if lq.q.matches(func(f string) fieldValue { return storeTypeValue(t, f) }) {
			found = append(found, t)
		}
	}
	start, end := pageOf(len(found), lq.page, lq.limit)
	out := make([]wireStoreType, 0, end-start)
	for _, t := range found[start:end] {
		out = append(out, s.storeTypeModel(t))
	}
	return listResponse(out, len(found))
}

func storeTypeValue(t *StoreType, f string) fieldValue {
	switch f {
	case "StoreType":
		return fieldValue{num: int64(t.StoreType)}
	case "ShortName":
		return fieldValue{str: t.ShortName}
	case "Name":
		return fieldValue{str: t.Name}
	}
	return fieldValue{null: true}
}

// getStoreType answers GET /CertificateStoreTypes/{id}.
func (s *Server) getStoreType(c *call) response {
	if !hasAnyScope(c.perms, PermStoresRead) {
		return forbidden(PermStoresRead)
	}
	id, err := strconv.Atoi(c.param)
	if err != nil {
		return errorResponse(http.StatusBadRequest, codeInvalid, "The value '"+c.param+"' is not a valid store type id.")
	}
	t := s.storeTypes[id]
	if t == nil {
		return errorResponse(http.StatusNotFound, codeNotFound, "Certificate store type with id "+c.param+" was not found.")
	}
	return jsonResponse(http.StatusOK, s.storeTypeModel(t))
}

// getStoreTypeByName answers GET /CertificateStoreTypes/Name/{name}, as the
// 25.4.1 recordings call it: an array, the type whose ShortName or Name it
// is (any case).
func (s *Server) getStoreTypeByName(c *call) response {
	if !hasAnyScope(c.perms, PermStoresRead) {
		return forbidden(PermStoresRead)
	}
	for _, t := range s.storeTypes {
		if strings.EqualFold(t.ShortName, c.param) || strings.EqualFold(t.Name, c.param) {
			return jsonResponse(http.StatusOK, []wireStoreType{s.storeTypeModel(t)})
		}
	}
	return errorResponse(http.StatusNotFound, codeNotFound, "Certificate store type with name "+c.param+" was not found.")
}
