// Package defaults applies a package's Defaults() to a Config, the one way
// netpoll, natsbroker and server fill the fields a caller left unset.
//
// The rule: a number (int, time.Duration...) at or below zero, or a nil
// pointer or interface, takes the default's value. Strings, slices and bools
// are left as given, since their zero values mean something (an empty admin
// address turns the admin API off); a package that gives a string a default
// sets it itself.
package defaults

import "reflect"

// Fill sets every unset field of *c, by the package rule, to the field of d.
// T must be a struct type. It runs once per configuration, not on any hot
// path.
func Fill[T any](c *T, d T) {
	cv, dv := reflect.ValueOf(c).Elem(), reflect.ValueOf(d)
	for i := range cv.NumField() {
		f := cv.Field(i)
		if !f.CanSet() {
			continue
		}
		switch f.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			if f.Int() <= 0 {
				f.Set(dv.Field(i))
			}
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if f.Uint() == 0 {
				f.Set(dv.Field(i))
			}
		case reflect.Float32, reflect.Float64:
			if f.Float() <= 0 {
				f.Set(dv.Field(i))
			}
		case reflect.Pointer, reflect.Interface, reflect.Func, reflect.Map, reflect.Chan:
			if f.IsNil() {
				f.Set(dv.Field(i))
			}
		}
	}
}
