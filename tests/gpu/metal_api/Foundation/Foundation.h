/* Foundation/Foundation.h, for tests/gpu/metal_syntax.sh only: the part of
 * Foundation that runtime/gpu/metal.m uses, declared as Apple documents it
 * (types, selectors, ownership), so that clang can check metal.m's syntax,
 * types and message sends on Linux, where there is no macOS SDK. It is not
 * used by any build that links. */
#ifndef KT_STUB_FOUNDATION_H
#define KT_STUB_FOUNDATION_H

#include <stddef.h>
#include <stdint.h>

/* The SDK's version, as <Availability.h> states it: KT_STUB_MACOS_SDK
 * (default 150000, the macOS 15 SDK; metal_syntax.sh also compiles against
 * 140000, whose Metal has no mathMode). */
#ifndef KT_STUB_MACOS_SDK
#define KT_STUB_MACOS_SDK 150000
#endif
#define __MAC_14_0 140000
#if KT_STUB_MACOS_SDK >= 150000
#define __MAC_15_0 150000
#endif
#define __MAC_OS_X_VERSION_MAX_ALLOWED KT_STUB_MACOS_SDK

typedef unsigned long NSUInteger;
typedef long NSInteger;
typedef signed char BOOL;
#define YES ((BOOL)1)
#define NO ((BOOL)0)
#define nil ((id)0)

@protocol NSObject
- (instancetype)retain;
- (oneway void)release;
- (instancetype)autorelease;
@end

__attribute__((objc_root_class))
@interface NSObject <NSObject>
+ (instancetype)alloc;
+ (instancetype)new;
- (instancetype)init;
- (instancetype)retain;
- (oneway void)release;
- (instancetype)autorelease;
@end

@interface NSString : NSObject
+ (instancetype)stringWithUTF8String:(const char *)nullTerminatedCString;
@property (readonly) const char *UTF8String;
@end

@interface NSError : NSObject
@property (readonly, copy) NSString *localizedDescription;
@end

@interface NSArray<ObjectType> : NSObject
@property (readonly) NSUInteger count;
- (ObjectType)objectAtIndex:(NSUInteger)index;
@end

#endif
